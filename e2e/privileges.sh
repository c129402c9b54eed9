# Guest script: ktracer with too few privileges, then with only CAP_BPF and
# CAP_PERFMON (no root) while root loads a module.
SETPRIV="/payload/bin/setpriv --reuid=65534 --regid=65534 --clear-groups"
$SETPRIV --inh-caps=-all ktracer watch -- true >/tmp/none.out 2>&1
echo "KT-OUT:nocaps:exit:$?"
sed 's/^/KT-OUT:nocaps:/' /tmp/none.out
$SETPRIV --inh-caps=-all,+bpf,+perfmon --ambient-caps=-all,+bpf,+perfmon ktracer watch --output json >/tmp/caps.out 2>/tmp/caps.err &
pid=$!
i=0
while ! grep -q '"event":"attached"' /tmp/caps.out 2>/dev/null && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
/payload/bin/insmod /payload/modules/kt_positive.ko
sleep 1
kill -INT $pid
wait $pid
echo "KT-OUT:caps:exit:$?"
sed 's/^/KT-OUT:caps:/' /tmp/caps.out
sed 's/^/KT-OUT:caps-stderr:/' /tmp/caps.err
