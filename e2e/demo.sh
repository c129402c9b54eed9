# Guest script for `make demo`: ktracer watch (text output) around insmod of
# each test module, as a driver developer would run it.
for m in kt_good kt_positive kt_slow kt_enodev kt_unresolved; do
	echo "KT-OUT:"
	echo "KT-OUT:\$ ktracer watch -- insmod $m.ko"
	ktracer watch -- /payload/bin/insmod /payload/modules/$m.ko >/tmp/demo.out 2>&1
	st=$?
	sed 's/^/KT-OUT:/' /tmp/demo.out
	echo "KT-OUT:(exit status $st)"
done
