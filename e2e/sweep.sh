# Guest script: modprobe every module shipped with the kernel, in
# modules.dep order (modprobe loads each one's dependencies first), while
# one ktracer watch session traces them all. Modules that need hardware fail
# their init (init-failed, info); the rules that must stay silent on code
# nobody here wrote are dangling-init-pointer and freed-init-call.
KVER=$(uname -r)
DEP=/payload/lib/modules/$KVER/modules.dep
cat >/tmp/sweep-inner.sh <<INNER
cut -d: -f1 $DEP | while read -r path; do
	name=\${path##*/}
	name=\${name%%.ko*}
	timeout 60 /payload/bin/modprobe -d /payload "\$name" >/dev/null 2>&1
	echo "\$name \$?" >>/tmp/sweep-status
done
INNER
t0=$(date +%s)
ktracer watch --verbose --output json -- sh /tmp/sweep-inner.sh >/tmp/sweep.out 2>/tmp/sweep.err
echo "KT-OUT:sweep:exit:$?"
t1=$(date +%s)
echo "KT-OUT:sweep-stats:seconds $((t1 - t0))"
echo "KT-OUT:sweep-stats:attempted $(wc -l </tmp/sweep-status)"
echo "KT-OUT:sweep-stats:modprobe-ok $(grep -c ' 0$' /tmp/sweep-status)"
echo "KT-OUT:sweep-stats:loaded $(wc -l </proc/modules)"
echo "KT-OUT:sweep-stats:exit:0"
grep -v '"event":"\(initcall\|module_load\|module_live\|module_free\)"' /tmp/sweep.out | sed 's/^/KT-OUT:sweep:/'
grep -c '"event":"module_live"' /tmp/sweep.out | sed 's/^/KT-OUT:sweep-stats:module_live /'
grep -c '"event":"module_load"' /tmp/sweep.out | sed 's/^/KT-OUT:sweep-stats:module_load /'
grep -c '"event":"initcall"' /tmp/sweep.out | sed 's/^/KT-OUT:sweep-stats:initcall /'
sed 's/^/KT-OUT:sweep-stderr:/' /tmp/sweep.err | head -50
cut -d' ' -f1 /proc/modules | sed 's/^/KT-OUT:sweep-loaded:/'
