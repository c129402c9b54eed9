# Guest script for TestBootReport (e2e/boot_test.go). The kernel was booted
# with the initcall trace events, initcall_debug and mxcpus=1. Steps print
# KT-OUT:<step>:<line> and KT-OUT:<step>:exit:<status>.
set -u
# modules.builtin.modinfo from the payload, where an installed kernel has it.
[ -d /payload/lib ] && cp -a /payload/lib/. /lib/
step() { # step NAME CMD...: run CMD, prefix its stdout, print its status
	name=$1; shift
	"$@" >/tmp/$name.out 2>/tmp/$name.err
	echo "KT-OUT:$name:exit:$?"
	sed "s/^/KT-OUT:$name:/" /tmp/$name.out
	sed "s/^/KT-OUT:$name-stderr:/" /tmp/$name.err
}
step json ktracer boot --format json --out /tmp/boot.json
step text ktracer boot
step svg ktracer boot --format svg --out /tmp/boot.svg
step perfetto ktracer boot --format perfetto --out /tmp/boot.perfetto.json
# The initcall_debug "calling" lines of built-in initcalls and module
# inits; PCI fixups print "pci 0000:..: calling  quirk_..." and are not.
step calling sh -c "dmesg | grep -c '^\[ *[0-9.]*\] calling  '"
step json-file base64 /tmp/boot.json
step svg-file base64 /tmp/boot.svg
step perfetto-file base64 /tmp/boot.perfetto.json
