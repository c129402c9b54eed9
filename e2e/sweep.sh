# Guest script: modprobe every module shipped with the kernel, in
# modules.dep order (modprobe loads each one's dependencies first), while
# one ktracer watch session traces them all. Modules that need hardware fail
# their init (init-failed, info); the rules that must stay silent on code
# nobody here wrote are dangling-init-pointer and freed-init-call.
KVER=$(uname -r)
DEP=/payload/lib/modules/$KVER/modules.dep
# Where the startup audit (and modprobe) look for the module files.
[ -e /lib/modules/$KVER ] || ln -s /payload/lib/modules/$KVER /lib/modules/$KVER

# About 100 modules loaded before ktracer starts, as udev loads them at
# boot; then a ktracer session starts and its startup audit reads them all.
cut -d: -f1 $DEP | head -n 100 | while read -r path; do
	name=${path##*/}
	timeout 60 /payload/bin/modprobe "${name%%.ko*}" >/dev/null 2>&1
done
echo "KT-OUT:sweep-stats:preloaded $(wc -l </proc/modules)"
ktracer watch --verbose --output json -- true >/tmp/audit100.out 2>/tmp/audit100.err
echo "KT-OUT:audit100:exit:$?"
grep -v '"event":"module_already_loaded"' /tmp/audit100.out | sed 's/^/KT-OUT:audit100:/'
grep '"event":"module_already_loaded"' /tmp/audit100.out | grep '"reason"' | sed 's/^/KT-OUT:audit100:/'
echo "KT-OUT:audit100-stats:module_already_loaded $(grep -c '"event":"module_already_loaded"' /tmp/audit100.out)"
echo "KT-OUT:audit100-stats:exit:0"
sed 's/^/KT-OUT:audit100-stderr:/' /tmp/audit100.err
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

# Every shipped module that loads is loaded now: a new session audits them.
ktracer watch --verbose --output json -- true >/tmp/auditall.out 2>/tmp/auditall.err
echo "KT-OUT:auditall:exit:$?"
grep -v '"event":"module_already_loaded"' /tmp/auditall.out | sed 's/^/KT-OUT:auditall:/'
grep '"event":"module_already_loaded"' /tmp/auditall.out | grep '"reason"' | sed 's/^/KT-OUT:auditall:/'
echo "KT-OUT:auditall-stats:module_already_loaded $(grep -c '"event":"module_already_loaded"' /tmp/auditall.out)"
echo "KT-OUT:auditall-stats:exit:0"
sed 's/^/KT-OUT:auditall-stderr:/' /tmp/auditall.err
