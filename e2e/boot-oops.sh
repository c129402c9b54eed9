# Guest script for TestBootInitcallOops (e2e/boot_test.go), booted with
# initcall_debug: kt_oops_init oopses in its init (seed incident 1). The
# oops kills the loading shell, so it runs in a child. Then the saved log
# is analysed as a user would after the fact: ktracer boot --from FILE.
set -u
sh -c '/payload/bin/insmod /payload/modules/kt_oops_init.ko'
sleep 1
# The oops raised the console loglevel for good: quieten it again.
echo 1 >/proc/sys/kernel/printk
dmesg >/tmp/dmesg.txt
ktracer boot --from /tmp/dmesg.txt --format json --out /tmp/oops.json >/tmp/oops.out 2>/tmp/oops.err
echo "KT-OUT:oops:exit:$?"
sed 's/^/KT-OUT:oops:/' /tmp/oops.out
sed 's/^/KT-OUT:oops-stderr:/' /tmp/oops.err
base64 /tmp/oops.json | sed 's/^/KT-OUT:oops-json:/'
echo KT-OUT:oops-json:exit:0
