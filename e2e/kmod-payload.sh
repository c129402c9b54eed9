#!/usr/bin/env bash
# Put Debian's kmod (insmod, rmmod, modprobe, lsmod), util-linux's setpriv and
# their libraries into a
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
# util-linux's setpriv too, for the tests that drop privileges.
SETPRIV=$(readlink -f "$(command -v setpriv || echo /usr/bin/setpriv)")
[ -x "$SETPRIV" ] || { echo "kmod-payload.sh: no setpriv on this machine: install util-linux" >&2; exit 1; }
cp "$SETPRIV" "$P/lib/setpriv"
while read -r lib; do cp -L "$lib" "$P/lib/"; done < <(ldd "$SETPRIV" | grep -o '/[^ ]*')
cat >"$P/bin/setpriv" <<WRAP
#!/bin/sh
exec /payload/lib/$LDSO --library-path /payload/lib /payload/lib/setpriv "\$@"
WRAP
chmod 755 "$P/bin/setpriv"
for tool in insmod rmmod modprobe lsmod modinfo depmod; do
	cat >"$P/bin/$tool" <<WRAP
#!/bin/sh
exec /payload/lib/$LDSO --library-path /payload/lib --argv0 $tool /payload/lib/kmod "\$@"
WRAP
	chmod 755 "$P/bin/$tool"
done
