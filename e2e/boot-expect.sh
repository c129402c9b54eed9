# Guest script for TestBootExpectCPUs (e2e/boot_test.go): seed incident 4.
# The guest has 4 vCPUs and the command line tries to limit them to 2,
# with the typo mxcpus=2 or with maxcpus=2. Steps print KT-OUT:<step>:<line>
# and KT-OUT:<step>:exit:<status>; e2e/boot-capture.sh is appended and
# prints this boot as a fixture on KT-OUT:fixture: lines.
set -u
[ -d /payload/lib ] && cp -a /payload/lib/. /lib/
step() { # step NAME CMD...: run CMD, prefix its stdout, print its status
	name=$1; shift
	"$@" >/tmp/$name.out 2>/tmp/$name.err
	echo "KT-OUT:$name:exit:$?"
	sed "s/^/KT-OUT:$name:/" /tmp/$name.out
	sed "s/^/KT-OUT:$name-stderr:/" /tmp/$name.err
}
step online cat /sys/devices/system/cpu/online
step expect ktracer boot --expect cpus=2 --format json --out /tmp/expect.json
step expect-text ktracer boot --expect cpus=2
step expect-json base64 /tmp/expect.json
