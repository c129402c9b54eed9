# Guest script of e2e/bench/run.sh (make bench): runs ktbench, which times
# finit_module with no tracer, ktracer and bpftrace, their start-up, memory
# and idle wake-ups, and prints its markdown report as KT-OUT:report: lines,
# every raw sample as KT-OUT:raw: lines.
#
# bpftrace is Debian's dynamically linked binary; its libraries are in
# /payload/lib. It runs natively rather than through the loader as the kmod
# wrappers do: bpftrace fires BEGIN through a uprobe on its own
# /proc/self/exe, which would then be the loader. So the guest gets the
# standard multiarch path and loader location.
mkdir -p /lib64
ln -s /payload/lib /lib/x86_64-linux-gnu
ln -s /payload/lib/ld-linux-x86-64.so.2 /lib64/ld-linux-x86-64.so.2
echo 1 >/proc/sys/kernel/printk

echo "KT-OUT:info:kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo)"
echo "KT-OUT:info:$(/payload/bin/bpftrace --version 2>&1)"
echo "KT-OUT:info:$(/payload/bin/ktracer version 2>&1 | tr "\n" " ")"

# shellcheck disable=SC2046 # one option per word, written by run.sh
/payload/bin/ktbench -raw /tmp/raw.txt $(cat /payload/ktbench.args) >/tmp/report.md
st=$?
sed 's/^/KT-OUT:report:/' /tmp/report.md
[ ! -f /tmp/raw.txt ] || sed 's/^/KT-OUT:raw:/' /tmp/raw.txt
dmesg | grep -E 'BUG:|Oops|WARNING:|RIP:|lost' | head -n 20 | sed 's/^/KT-OUT:dmesg:/'
exit $st
