# Guest script: storms of module loads under one ktracer watch session each.
# 1. 1000 load/unload cycles of kt_good, one task.
# 2. 8 different modules loaded at once by 8 tasks, 20 rounds: every init
#    must be attributed to its own module.
M=/payload/modules
cat >/tmp/cycles.sh <<INNER
i=0
while [ \$i -lt 1000 ]; do
	/payload/bin/insmod $M/kt_good.ko || exit 1
	/payload/bin/rmmod kt_good || exit 1
	i=\$((i + 1))
done
INNER
cat >/tmp/parallel.sh <<INNER
r=0
while [ \$r -lt 20 ]; do
	for m in kt_good kt_slow kt_positive kt_enodev kt_initok kt_warn kt_oops kt_badpage; do
		/payload/bin/insmod $M/\$m.ko 2>/dev/null &
	done
	wait
	for m in kt_good kt_slow kt_positive kt_initok kt_warn kt_oops kt_badpage; do
		/payload/bin/rmmod \$m || exit 1
	done
	r=\$((r + 1))
done
INNER
# 3. stopped: ktracer's output stalls (its reader sleeps) while 200 loads
#    happen, then SIGINT: what is still in the ring buffer must be reported.
cat >/tmp/stopped.sh <<INNER
ktracer watch --output json 2>/tmp/stopped.err | { sleep 20; cat; } >/tmp/stopped.out &
sleep 8
i=0
while [ \$i -lt 200 ]; do
	/payload/bin/insmod $M/kt_good.ko || exit 1
	/payload/bin/rmmod kt_good || exit 1
	i=\$((i + 1))
done
kill -INT \$(pidof ktracer)
wait
INNER
for step in cycles parallel stopped; do
	t0=$(date +%s)
	if [ $step = stopped ]; then
		sh /tmp/stopped.sh
	else
		ktracer watch --output json -- sh /tmp/$step.sh >/tmp/$step.out 2>/tmp/$step.err
	fi
	echo "KT-OUT:$step:exit:$?" >/tmp/$step.status
	t1=$(date +%s)
	echo 1 >/proc/sys/kernel/printk
	cat /tmp/$step.status
	echo "KT-OUT:$step-stats:seconds $((t1 - t0))"
	echo "KT-OUT:$step-stats:exit:0"
	# Every initcall and its module, then the totals; not every line.
	grep '"event":"initcall"' /tmp/$step.out | sed 's/.*"module":"\([^"]*\)","function":"\([^"]*\)".*"ret":\(-*[0-9]*\).*/\1 \2 \3/' | sort | uniq -c | sed "s/^/KT-OUT:$step-initcalls:/"
	for k in module_load module_live module_free module_init_failed; do
		echo "KT-OUT:$step-stats:$k $(grep -c "\"event\":\"$k\"" /tmp/$step.out)"
	done
	grep '"event":"\(summary\|attached\)"' /tmp/$step.out | sed "s/^/KT-OUT:$step:/"
	sed "s/^/KT-OUT:$step-stderr:/" /tmp/$step.err | head -20
done
