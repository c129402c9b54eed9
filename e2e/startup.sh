# Guest side of TestStartupAudit (e2e/startup_test.go): modules are loaded
# the way udev loads them at boot, before any ktracer runs; then ktracer
# starts and its startup audit must find what they left behind.
set -u
KVER=$(uname -r)
EXTRA=/lib/modules/$KVER/extra
mkdir -p "$EXTRA"
cp /payload/modules/kt_tablebomb.ko /payload/modules/kt_good.ko "$EXTRA/"
/payload/bin/depmod "$KVER" 2>&1 | sed "s/^/KT-OUT:depmod:/"
/payload/bin/modprobe kt_good; echo "KT-OUT:load:good $?"
/payload/bin/modprobe kt_tablebomb; echo "KT-OUT:load:tablebomb $?"
echo "KT-OUT:load:exit:0"
sleep 1 # init memory is freed from a workqueue

# What the unit tests replay: sysfs sections and notes, and /proc/modules.
C=/tmp/cap/sys/module/kt_tablebomb
mkdir -p "$C/sections" "$C/notes" /tmp/cap/proc
for f in $(ls -A /sys/module/kt_tablebomb/sections); do cat "/sys/module/kt_tablebomb/sections/$f" >"$C/sections/$f"; done
for f in $(ls -A /sys/module/kt_tablebomb/notes); do cat "/sys/module/kt_tablebomb/notes/$f" >"$C/notes/$f"; done
cat /proc/modules >/tmp/cap/proc/modules
grep -E '\[(kt_tablebomb|kt_good)\]' /proc/kallsyms >/tmp/cap/proc/kallsyms
(cd /tmp/cap && tar cf - . | gzip -9 | base64 -w 0; echo) | sed 's/^/KT-OUT:capture:/'
echo "KT-OUT:capture:exit:0"

# 1. A new watch session: the audit finds the pointer kept in kt_table[2].
ktracer watch --verbose --output json -- true >/tmp/audit.out 2>/tmp/audit.err
echo "KT-OUT:audit:exit:$?"
sed 's/^/KT-OUT:audit:/' /tmp/audit.out
sed 's/^/KT-OUT:audit-stderr:/' /tmp/audit.err

# 2. The daemon: kt_timebomb is loaded while it runs, from a build tree
# (no modules.dep entry: only the daemon's capture names its __init code);
# the daemon restarts; the trigger must still be named.
ip link set lo up
daemon_until() { # LOGFILE PATTERN: wait up to 120 s for PATTERN in the log
	i=0
	until grep -q "$2" "$1" 2>/dev/null || [ $i -gt 240 ]; do i=$((i + 1)); sleep 0.5; done
	grep -q "$2" "$1" 2>/dev/null
}
mkdir -p /tmp/state
ktracer daemon --web.listen-address 127.0.0.1:19436 --log.format json --log.file /tmp/d1.log --state-dir /tmp/state 2>/tmp/d1.err &
pid=$!
daemon_until /tmp/d1.log 'startup audit'; echo "KT-OUT:daemon1:audit $?"
/payload/bin/insmod /payload/rebuilt/kt_timebomb.ko; echo "KT-OUT:daemon1:insmod $?" # KT_BIG_INIT: see kt_timebomb.c
daemon_until /tmp/d1.log '"msg":"kt_timebomb live"'; echo "KT-OUT:daemon1:live $?"
sleep 1
kill -TERM $pid; wait $pid; echo "KT-OUT:daemon1:exit:$?"
sed 's/^/KT-OUT:daemon1-state:/' /tmp/state/init-symbols.json; echo
echo "KT-OUT:daemon1-state:exit:0"

ktracer daemon --web.listen-address 127.0.0.1:19436 --log.format json --log.file /tmp/d2.log --state-dir /tmp/state --record /tmp/d2.rec 2>/tmp/d2.err &
pid=$!
daemon_until /tmp/d2.log 'startup audit'; echo "KT-OUT:daemon2:audit $?"
sh -c "echo 1 > /sys/module/kt_timebomb/parameters/trigger"
echo 1 >/proc/sys/kernel/printk
daemon_until /tmp/d2.log 'freed-init-call'; echo "KT-OUT:daemon2:fault $?"
sleep 1
kill -TERM $pid; wait $pid; echo "KT-OUT:daemon2:exit:$?"
grep -v '"event":"attached"' /tmp/d1.log | sed 's/^/KT-OUT:daemon1-log:/'
echo "KT-OUT:daemon1-log:exit:0"
grep -v '"event":"attached"' /tmp/d2.log | sed 's/^/KT-OUT:daemon2-log:/'
echo "KT-OUT:daemon2-log:exit:0"
sed 's/^/KT-OUT:daemon-stderr:/' /tmp/d1.err /tmp/d2.err
echo "KT-OUT:daemon-stderr:exit:0"
# What the restarted daemon saw, to replay on the host.
(base64 -w 0 /tmp/d2.rec; echo) | sed 's/^/KT-OUT:daemon2-rec:/'
grep '\[kt_' /proc/kallsyms | sed 's/^/KT-OUT:daemon2-kallsyms:/'
for m in kt_timebomb kt_good kt_tablebomb; do
	for f in $(ls -A /sys/module/$m/sections); do echo "$m $f $(cat /sys/module/$m/sections/$f)"; done
done | sed 's/^/KT-OUT:daemon2-sections:/'
cat /proc/modules | sed 's/^/KT-OUT:daemon2-sections:/'
echo "KT-OUT:daemon2-rec:exit:0"

# 3. A separate watch session is running when kt_tablebomb's pointer is
# called: freed-init-call naming module, __init function and caller.
ktracer watch --output json -- sh -c 'sh -c "echo 1 > /sys/module/kt_tablebomb/parameters/trigger"; sleep 1; exit 0' >/tmp/trigger.out 2>/tmp/trigger.err
echo "KT-OUT:trigger:exit:$?" >/tmp/trigger.status
echo 1 >/proc/sys/kernel/printk
cat /tmp/trigger.status
sed 's/^/KT-OUT:trigger:/' /tmp/trigger.out
sed 's/^/KT-OUT:trigger-stderr:/' /tmp/trigger.err

# 4. The file at kt_tablebomb's modules.dep path is replaced by another
# build of it: the audit must say so and name nothing from that file.
cp /payload/rebuilt/kt_tablebomb.ko "$EXTRA/kt_tablebomb.ko"
ktracer watch --verbose --output json -- true >/tmp/rebuilt.out 2>/tmp/rebuilt.err
echo "KT-OUT:rebuilt:exit:$?"
sed 's/^/KT-OUT:rebuilt:/' /tmp/rebuilt.out
sed 's/^/KT-OUT:rebuilt-stderr:/' /tmp/rebuilt.err
