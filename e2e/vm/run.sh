#!/usr/bin/env bash
# Boot the kernel prepared by e2e/vm/setup.sh under QEMU with a busybox
# initramfs and run one guest script; the serial console goes to stdout.
#
#   e2e/vm/run.sh --vmdir build/vm --payload DIR --script GUEST.sh
#                 [--append "extra kernel args"] [--timeout SECONDS (120)]
#                 [--mem MiB (1024)] [--smp N (2)] [--kmod NAME]... [--log FILE]
#
#   --payload DIR  copied to /payload in the guest (binaries must be static)
#   --script FILE  becomes /payload/guest.sh, run as `sh /payload/guest.sh`
#                  with cwd /payload; the test modules from setup.sh are in
#                  /payload/modules/*.ko unless the payload has its own
#   --kmod NAME    add a module shipped with the kernel (and its deps) under
#                  /lib/modules/KVER so `modprobe NAME` works in the guest
#   --smp N        vCPUs of the guest (default 2)
#   --log FILE     also save the console output (CRs stripped) to FILE
#   --accel tcg|kvm  default tcg, or $KT_VM_ACCEL (kvm uses -cpu host)
#   --reboot       let a guest reboot or panic restart the guest in the same
#                  QEMU process (RAM kept: pstore survives); guest.sh runs on
#                  every boot and must tell the boots apart
#   --disk FILE    a raw disk image as /dev/vda (virtio): state that must
#                  survive --reboot; needs --kmod virtio_pci --kmod virtio_blk
#   --hostfwd SPEC user networking with hostfwd=SPEC (repeatable), e.g.
#                  tcp:127.0.0.1:19100-:9100; needs --kmod virtio_pci --kmod
#                  virtio_net and, in the guest, modprobe virtio_pci virtio_net;
#                  ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
#
# Guest environment: proc, sysfs, devtmpfs, debugfs (/sys/kernel/debug),
# tracefs (/sys/kernel/tracing), bpffs (/sys/fs/bpf), cgroup2
# (/sys/fs/cgroup), tmpfs on /tmp; PATH=/payload/bin:/usr/sbin:/usr/bin:/sbin:/bin
# with every busybox applet. /init prints a KT-GUEST-START line, runs
# guest.sh, then prints
#   KT-GUEST-EXIT <status>
# and powers off. run.sh exits with that status, or, if the marker never
# appeared, prints "run.sh: ..." on stderr and exits 124 (timeout) or 125
# (guest died: kernel panic, init crash, qemu error).
#
# Parsing guest output: the serial console carries kernel printk messages as
# well as the script's output, and a printk can land in the middle of a
# script line. So:
#   - machine-readable lines must carry a prefix: `ktout CMD ARGS...` runs
#     CMD and prints each stdout line as "KT-OUT:<line>" (status of CMD is
#     kept); `... | ktout` prefixes stdin. Callers grep '^KT-OUT:'.
#   - the kernel is booted with `quiet loglevel=1`, so only KERN_EMERG
#     messages (panics) reach the console; a guest that needs kernel
#     messages (oopses, "suspiciously returned", ...) reads them explicitly
#     with `dmesg | ktout`. Pass --append "loglevel=7" to see everything
#     live while debugging (the last loglevel= wins).
#   - an oops raises the console loglevel for good (console_verbose()), so
#     after one every printk reaches the console; the prefix still holds.
#     `echo 1 >/proc/sys/kernel/printk` in the guest quietens it again.
set -euo pipefail

PROG=run.sh
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }
die() { echo "$PROG: $*" >&2; exit 2; }

VMDIR='' PAYLOAD='' SCRIPT='' APPEND='' TIMEOUT=120 MEM=1024 SMP=2 LOG='' KMODS=() REBOOT='' HOSTFWD=() DISK=''
ACCEL=${KT_VM_ACCEL:-tcg}
while [ $# -gt 0 ]; do
	case $1 in
	--vmdir) VMDIR=$2; shift 2 ;;
	--payload) PAYLOAD=$2; shift 2 ;;
	--script) SCRIPT=$2; shift 2 ;;
	--append) APPEND=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--smp) SMP=$2; shift 2 ;;
	--kmod) KMODS+=("$2"); shift 2 ;;
	--log) LOG=$2; shift 2 ;;
	--reboot) REBOOT=1; shift ;;
	--hostfwd) HOSTFWD+=("$2"); shift 2 ;;
	--disk) DISK=$2; shift 2 ;;
	--accel) ACCEL=$2; shift 2 ;;
	-h | --help) usage ;;
	*) echo "$PROG: unknown argument $1" >&2; usage ;;
	esac
done
[ -n "$VMDIR" ] && [ -n "$SCRIPT" ] || usage
[ -s "$VMDIR/vmlinuz" ] && [ -s "$VMDIR/KVER" ] || die "$VMDIR has no vmlinuz/KVER: run e2e/vm/setup.sh $VMDIR first"
case $SMP in '' | *[!0-9]* | 0) die "--smp wants a positive count, not $SMP" ;; esac
[ -f "$SCRIPT" ] || die "no guest script $SCRIPT"
[ -z "$PAYLOAD" ] || [ -d "$PAYLOAD" ] || die "payload $PAYLOAD is not a directory"
VMDIR=$(cd "$VMDIR" && pwd)
KVER=$(cat "$VMDIR/KVER")
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "no busybox: install busybox-static"
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is dynamically linked: install busybox-static"
command -v qemu-system-x86_64 >/dev/null || die "no qemu-system-x86_64: install qemu-system-x86"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# --- initramfs -------------------------------------------------------------
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,payload,lib/modules}
cp "$BUSYBOX" "$R/bin/busybox"
# The kernel opens /dev/console for /init before anything is mounted.
[ "$(id -u)" = 0 ] && mknod -m 600 "$R/dev/console" c 5 1

cat >"$R/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/payload/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t bpf bpffs /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
cd /payload
echo
echo KT-GUEST-START
sh /payload/guest.sh
st=$?
echo "KT-GUEST-EXIT $st"
# Let the UART drain the line before the power goes: stty waits for the
# output queue to empty (TCSADRAIN).
stty -F /dev/console -ixon 2>/dev/null
poweroff -f
EOF
chmod 755 "$R/init"

cat >"$R/bin/ktout" <<'EOF'
#!/bin/sh
# ktout CMD ARGS...  run CMD, prefix each stdout line with KT-OUT:, exit with
#                    CMD's status. Without arguments, prefix stdin.
if [ $# -eq 0 ]; then
	exec sed 's/^/KT-OUT:/'
fi
f=/tmp/.ktout.$$
{ "$@"; echo $? >"$f"; } | sed 's/^/KT-OUT:/'
st=$(cat "$f"); rm -f "$f"
exit "$st"
EOF
chmod 755 "$R/bin/ktout"

if [ -n "$PAYLOAD" ]; then cp -a "$PAYLOAD"/. "$R/payload/"; fi
if [ ! -e "$R/payload/modules" ] && ls "$VMDIR"/modules/*.ko >/dev/null 2>&1; then
	mkdir -p "$R/payload/modules"
	cp "$VMDIR"/modules/*.ko "$R/payload/modules/"
fi
cp "$SCRIPT" "$R/payload/guest.sh"

if [ ${#KMODS[@]} -gt 0 ]; then
	KROOT=$VMDIR/kernel
	MDIR=$R/lib/modules/$KVER
	mkdir -p "$MDIR"
	cp "$KROOT/lib/modules/$KVER"/modules.* "$MDIR/"
	for m in "${KMODS[@]}"; do
		deps=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m") || die "--kmod $m: not a module of $KVER"
		while read -r kind path _; do
			[ "$kind" = insmod ] || continue
			rel=${path#"$KROOT"}
			mkdir -p "$R$(dirname "$rel")"
			cp "$path" "$R$rel"
		done <<<"$deps"
	done
fi

(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$WORK/initrd.gz"

# --- boot ------------------------------------------------------------------
# TCG unless asked: on this project's machines /dev/kvm exists but KVM is
# unusable (nested: "-cpu max" aborts on MSR 0x10a, "-cpu host" spins in
# SeaBIOS), so the device's presence proves nothing.
case $ACCEL in
tcg) CPU=max ;;
kvm) [ -c /dev/kvm ] && [ -w /dev/kvm ] || die "--accel kvm: /dev/kvm is not usable"; CPU=host ;;
*) die "--accel must be tcg or kvm" ;;
esac
# no_timer_check: a CPU-starved TCG guest can fail the IO-APIC timer check
# and panic at boot. panic_on_oops=0 is not a boot parameter on 6.1 (only a
# sysctl); it stays as the boot tests' example of an unknown one.
CMDLINE="console=ttyS0 panic=-1 panic_on_oops=0 no_timer_check quiet loglevel=1 rdinit=/init $APPEND"

# Like -nographic (serial on stdio), but without the monitor mux and without
# SeaBIOS's serial console, whose escape sequences would garble the first line.
echo "$PROG: booting $KVER (accel $ACCEL, timeout ${TIMEOUT}s): $CMDLINE" >&2
OUT=$WORK/console.log
T0=$(date +%s.%N)
# --reboot: a guest reboot (or a panic, with panic=-1) restarts the guest in
# the same QEMU process, RAM kept (pstore/ramoops survives); guest.sh runs
# again on the new boot and must tell the boots apart itself.
REBOOTOPT=-no-reboot
[ -z "$REBOOT" ] || REBOOTOPT=
# --hostfwd tcp:127.0.0.1:HOSTPORT-:GUESTPORT: user networking with a virtio
# NIC; the guest needs the virtio_net module (--kmod virtio_net) and an
# address (10.0.2.15/24, the user-mode default).
NIC=(-nic none)
if [ ${#HOSTFWD[@]} -gt 0 ]; then
	opt=user,model=virtio-net-pci
	for f in "${HOSTFWD[@]}"; do opt+=",hostfwd=$f"; done
	NIC=(-nic "$opt")
fi
DRIVE=()
[ -z "$DISK" ] || DRIVE=(-drive "file=$DISK,format=raw,if=virtio")
set +e
# shellcheck disable=SC2086
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 \
	-machine q35 -accel "$ACCEL" -cpu "$CPU" -m "$MEM" -smp "$SMP" \
	-display none -vga none -monitor none -serial stdio $REBOOTOPT "${NIC[@]}" "${DRIVE[@]}" \
	-kernel "$VMDIR/vmlinuz" -initrd "$WORK/initrd.gz" \
	-append "$CMDLINE" </dev/null | tr -d '\r' | tee "$OUT"
rc=("${PIPESTATUS[@]}")
set -e
T1=$(date +%s.%N)
secs=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }')
[ -z "$LOG" ] || cp "$OUT" "$LOG"
# The last console line ("reboot: Power down") has no newline.
[ ! -s "$OUT" ] || [ -z "$(tail -c1 "$OUT")" ] || echo

st=$(sed -n 's/^.*KT-GUEST-EXIT \([0-9][0-9]*\)$/\1/p' "$OUT" | tail -n1)
if [ -z "$st" ]; then
	if [ "${rc[0]}" = 124 ]; then
		echo "$PROG: guest never printed KT-GUEST-EXIT: timed out after ${TIMEOUT}s" >&2
		exit 124
	fi
	echo "$PROG: guest never printed KT-GUEST-EXIT (qemu exit ${rc[0]} after ${secs}s; kernel panic or init died?)" >&2
	exit 125
fi
echo "$PROG: guest exited with status $st after ${secs}s" >&2
exit "$st"
