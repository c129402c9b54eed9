# Guest script: copy what `ktracer boot` reads into /tmp/fx (a tree rooted
# like /) and print it as a base64 tarball on KT-OUT:fixture: lines, so the
# host can keep real captures as unit-test fixtures under boot/testdata.
# With /payload/oops present it first loads kt_oops_init (it oopses in its init).
#
#   e2e/vm/run.sh --vmdir build/vm --payload P --script e2e/boot-capture.sh \
#       --append "KERNEL ARGS" >console.log
#   grep -a '^KT-OUT:fixture:' console.log | grep -v exit: |
#       sed 's/^KT-OUT:fixture://' | base64 -d >boot/testdata/NAME.tgz
#
# P holds lib/modules/KVER/modules.builtin.modinfo (from build/vm/kernel)
# and, for the oops capture, the kmod tools (e2e/kmod-payload.sh P) and an
# empty file named oops. The fixtures' command lines are in boot_test.go.
set -u
# The payload may carry lib/modules (modules.builtin.modinfo) for this kernel.
[ -d /payload/lib ] && cp -a /payload/lib/. /lib/
if [ -f /payload/oops ]; then
	sh -c '/payload/bin/insmod /payload/modules/kt_oops_init.ko'
	sleep 1
fi
fx=/tmp/fx
mkdir -p $fx/proc $fx/sys/kernel/tracing $fx/sys/devices/system/cpu $fx/sys/kernel
cat /proc/cmdline >$fx/proc/cmdline
cat /proc/meminfo >$fx/proc/meminfo
cat /proc/iomem >$fx/proc/iomem
grep ' __initcall' /proc/kallsyms >$fx/proc/kallsyms
cat /sys/kernel/tracing/trace >$fx/sys/kernel/tracing/trace
for f in online possible present; do cat /sys/devices/system/cpu/$f >$fx/sys/devices/system/cpu/$f; done
cat /sys/kernel/kexec_crash_size >$fx/sys/kernel/kexec_crash_size
dmesg >$fx/dmesg
kver=$(uname -r)
if [ -f /lib/modules/$kver/modules.builtin.modinfo ]; then
	mkdir -p $fx/lib/modules/$kver
	cp /lib/modules/$kver/modules.builtin.modinfo $fx/lib/modules/$kver/
fi
# sysctl names, for sysctl.* parameters and did-you-mean.
find /proc/sys -type f | while read -r p; do
	mkdir -p "$fx$(dirname "$p")" && : >"$fx$p"
done
# Built-in module parameters: names only (the values are not needed).
for p in /sys/module/*/parameters/*; do
	mkdir -p "$fx$(dirname "$p")" && : >"$fx$p"
done
tar -C $fx -czf /tmp/fx.tgz . && base64 /tmp/fx.tgz | sed 's/^/KT-OUT:fixture:/'
echo KT-OUT:fixture:exit:0
