#!/usr/bin/env bash
# Put Debian's kmod (insmod, rmmod, modprobe, lsmod) and its libraries into a
# VM payload directory: e2e/kmod-payload.sh PAYLOAD
#
# busybox's insmod retries with init_module(2) whenever finit_module(2)
# fails, so a module whose init fails runs its init twice; the kmod tools
# driver developers really use do not. The libraries go to PAYLOAD/lib and
# each tool is a wrapper that runs kmod through the dynamic loader there,
# since the guest has no /lib. Guest scripts must call them by absolute path
# (/payload/bin/insmod): busybox's shell and timeout run their own applets
# in preference to PATH.
set -euo pipefail
P=${1:?usage: kmod-payload.sh PAYLOAD}
KMOD=$(readlink -f "$(command -v kmod || echo /usr/bin/kmod)")
[ -x "$KMOD" ] || { echo "kmod-payload.sh: no kmod on this machine: install kmod" >&2; exit 1; }
mkdir -p "$P/lib" "$P/bin"
cp "$KMOD" "$P/lib/kmod"
LDSO=
while read -r lib; do
	cp -L "$lib" "$P/lib/"
	case $lib in */ld-linux*) LDSO=$(basename "$lib") ;; esac
done < <(ldd "$KMOD" | grep -o '/[^ ]*')
[ -n "$LDSO" ] || { echo "kmod-payload.sh: cannot find kmod's dynamic loader" >&2; exit 1; }
for tool in insmod rmmod modprobe lsmod modinfo depmod; do
	cat >"$P/bin/$tool" <<WRAP
#!/bin/sh
exec /payload/lib/$LDSO --library-path /payload/lib --argv0 $tool /payload/lib/kmod "\$@"
WRAP
	chmod 755 "$P/bin/$tool"
done
