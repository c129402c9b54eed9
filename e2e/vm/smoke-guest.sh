#!/bin/sh
# Smoke test of the VM harness and the test modules (runs inside the guest):
#
#   e2e/vm/setup.sh build/vm
#   e2e/vm/run.sh --vmdir build/vm --script e2e/vm/smoke-guest.sh
#
# Loads every module from /payload/modules, prints insmod's status, elapsed
# time and the kernel messages it caused, fires the kt_timebomb and
# kt_initok triggers, and lists the kernel hooks ktracer relies on. All
# result lines are KT-OUT: prefixed; exits non-zero if an expectation fails.

fail=0
bad() { echo "KT-OUT:FAIL $*"; fail=1; }
# Milliseconds since boot (10 ms resolution is enough here).
ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }

echo "KT-OUT:kernel $(uname -r)"
if [ -e /sys/kernel/btf/vmlinux ]; then echo "KT-OUT:btf yes"; else bad "no /sys/kernel/btf/vmlinux"; fi
echo "KT-OUT:pci drivers: $(ls /sys/bus/pci/drivers | tr '\n' ' ')"
grep -E 'initcall|module_load|module_free|page_fault_kernel' /sys/kernel/tracing/available_events |
	sed 's/^/event /' | ktout
for f in do_init_module do_one_initcall free_module do_free_init; do
	if grep -qE "^$f( |\$)" /sys/kernel/tracing/available_filter_functions; then
		echo "KT-OUT:filter_function $f yes"
	else
		echo "KT-OUT:filter_function $f no"
	fi
done

# load M EXPECTED_STATUS: insmod M, report status, time and new kernel messages.
load() {
	dmesg -c >/dev/null
	t0=$(ms)
	insmod "/payload/modules/$1.ko" 2>/tmp/insmod.err
	st=$?
	t1=$(ms)
	echo "KT-OUT:insmod $1 status=$st ms=$((t1 - t0)) err=$(cat /tmp/insmod.err)"
	dmesg | sed "s/^/dmesg $1: /" | ktout
	[ "$st" = "$2" ] || bad "insmod $1 status $st, expected $2"
}

load kt_good 0
load kt_slow 0
load kt_enodev 19 # busybox insmod exits with the errno: ENODEV
load kt_positive 0
load kt_initok 0
load kt_timebomb 0
# Where the init text was (the sysfs entry stays after it is freed); the
# oops below must fault there, at kt_init_helper (offset 0 of .init.text).
echo "KT-OUT:kt_timebomb .init.text $(cat /sys/module/kt_timebomb/sections/.init.text)"
echo "KT-OUT:kt_timebomb .data $(cat /sys/module/kt_timebomb/sections/.data)"

# Init memory is freed by a work item after init returns; give it time.
sleep 1

dmesg -c >/dev/null
sh -c 'echo 1 > /sys/module/kt_initok/parameters/trigger'
echo "KT-OUT:trigger kt_initok status=$?"
dmesg | sed 's/^/dmesg kt_initok trigger: /' | ktout

dmesg -c >/dev/null
# In a child: the oops kills the writing process.
sh -c 'echo 1 > /sys/module/kt_timebomb/parameters/trigger'
st=$?
echo "KT-OUT:trigger kt_timebomb status=$st"
dmesg | sed 's/^/dmesg kt_timebomb trigger: /' | ktout
init_text=$(cat /sys/module/kt_timebomb/sections/.init.text | sed 's/^0x//')
dmesg | grep -q "BUG: unable to handle page fault for address: $init_text" ||
	bad "kt_timebomb trigger did not fault at its freed .init.text $init_text"
echo 1 >/proc/sys/kernel/printk # the oops made the console verbose

echo "KT-OUT:alive uptime=$(cut -d' ' -f1 /proc/uptime) tainted=$(cat /proc/sys/kernel/tainted)"
lsmod | sed 's/^/lsmod /' | ktout
for m in kt_good kt_slow kt_positive kt_initok; do
	rmmod "$m" || bad "rmmod $m"
done
echo "KT-OUT:rmmod done"
exit $fail
