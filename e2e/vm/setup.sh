#!/usr/bin/env bash
# Prepare everything the real-kernel (QEMU) tests need, without touching the
# host kernel:
#
#   e2e/vm/setup.sh [OUTDIR]        (default: <repo>/build/vm)
#
# - installs missing host packages (qemu-system-x86, busybox-static, cpio,
#   kmod, gcc, make, linux-headers-cloud-amd64), running apt-get update only
#   when something is missing or a package cannot be found;
# - KVER = the headers version the linux-headers-cloud-amd64 metapackage
#   pulled; downloads linux-image-KVER(-unsigned) with `apt-get download` and
#   unpacks it with dpkg-deb -x (never installs it);
# - builds e2e/modules against /usr/src/linux-headers-KVER.
#
# Result in OUTDIR:
#   KVER                        the kernel version string, e.g. 6.1.0-56-cloud-amd64
#   vmlinuz                     the kernel to boot (e2e/vm/run.sh --vmdir OUTDIR)
#   kernel/                     the unpacked image package; kernel/lib/modules/KVER
#                               holds the shipped modules, depmod'ed
#                               (run.sh --kmod NAME puts one in the guest)
#   modules/*.ko                the test modules (kt_positive, kt_timebomb, ...)
#
# Idempotent: a second run only checks and prints the summary line.
# A relative OUTDIR is taken relative to the current directory.
set -euo pipefail

PROG=setup.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MODSRC=$REPO/e2e/modules
OUTDIR=${1:-$REPO/build/vm}

START=$(date +%s.%N)
STEP="creating $OUTDIR"
trap 'echo "$PROG: FAILED while $STEP (see output above)" >&2' ERR
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

die() { echo "$PROG: FAILED: $*" >&2; trap - ERR; exit 1; }

APT_UPDATED=0
apt_update() {
	[ "$APT_UPDATED" = 1 ] && return 0
	STEP="running apt-get update"
	apt-get update -qq || die "apt-get update failed (is the Debian mirror in /etc/apt/sources.list* reachable?)"
	APT_UPDATED=1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" = 0 ] || die "must run as root (apt-get install/download)"

# --- host packages ---------------------------------------------------------
STEP="checking host packages"
PKGS=(qemu-system-x86 busybox-static cpio kmod gcc make linux-headers-cloud-amd64)
missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	apt_update
	STEP="installing ${missing[*]}"
	log=$(mktemp)
	if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
		cat "$log" >&2; rm -f "$log"
		die "apt-get install ${missing[*]} failed (output above)"
	fi
	rm -f "$log"
fi

# KVER = the versioned headers package the metapackage depends on.
headers_kver() {
	dpkg-query -W -f='${Depends}' linux-headers-cloud-amd64 |
		sed -n 's/.*linux-headers-\([0-9][^ ,]*-cloud-amd64\).*/\1/p'
}
STEP="finding the kernel version"
KVER=$(headers_kver)
[ -n "$KVER" ] || die "cannot read the headers version from linux-headers-cloud-amd64's Depends"

# --- kernel image (same version as the headers, not installed) -------------
have_image() {
	[ "$(cat "$OUTDIR/KVER" 2>/dev/null)" = "$KVER" ] &&
		[ -s "$OUTDIR/vmlinuz" ] && [ -s "$OUTDIR/kernel/lib/modules/$KVER/modules.dep" ]
}

# Prints "package=version" for the image package matching the headers, if apt knows it.
image_pkg() {
	local ver p cand
	ver=$(dpkg-query -W -f='${Version}' "linux-headers-$KVER")
	for p in "linux-image-$KVER-unsigned" "linux-image-$KVER"; do
		cand=$(apt-cache madison "$p" 2>/dev/null | awk -v v="$ver" '$3 == v {print $3; exit}')
		if [ -n "$cand" ]; then echo "$p=$cand"; return 0; fi
	done
	return 1
}

if ! have_image; then
	STEP="looking up linux-image-$KVER"
	pkg=$(image_pkg) || { apt_update; pkg=$(image_pkg); } || {
		# The mirror dropped this version (security updates replace old
		# kernels): move the headers to the current one and retry.
		STEP="upgrading linux-headers-cloud-amd64"
		apt-get install -y -qq --no-install-recommends linux-headers-cloud-amd64 >/dev/null ||
			die "cannot upgrade linux-headers-cloud-amd64"
		KVER=$(headers_kver)
		have_image || pkg=$(image_pkg)
	} || die "no linux-image-$KVER(-unsigned) of the headers' version in the apt sources"
fi

if ! have_image; then
	STEP="downloading $pkg"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# _apt cannot write to a root-owned temp dir; this only silences that warning.
	(cd "$tmp" && apt-get -qq -o APT::Sandbox::User=root download "$pkg") ||
		die "apt-get download $pkg failed"
	STEP="unpacking $pkg"
	rm -rf "$OUTDIR/kernel" "$OUTDIR/KVER" "$OUTDIR/vmlinuz"
	dpkg-deb -x "$tmp"/*.deb "$OUTDIR/kernel"
	[ -s "$OUTDIR/kernel/boot/vmlinuz-$KVER" ] || die "$pkg has no boot/vmlinuz-$KVER"
	[ -d "$OUTDIR/kernel/lib/modules/$KVER" ] || die "$pkg has no lib/modules/$KVER"
	cp "$OUTDIR/kernel/boot/vmlinuz-$KVER" "$OUTDIR/vmlinuz"
	# The package ships no modules.dep (made at install time): make it, so
	# modprobe works on this tree (run.sh --kmod).
	STEP="running depmod on the unpacked modules"
	depmod -b "$OUTDIR/kernel" "$KVER"
	echo "$KVER" >"$OUTDIR/KVER" # written last: marks the image as complete
	rm -rf "$tmp"
	trap - EXIT
fi

# --- test modules ----------------------------------------------------------
KDIR=/usr/src/linux-headers-$KVER
[ -f "$KDIR/Makefile" ] || die "missing $KDIR (package linux-headers-$KVER)"

mods_fresh() {
	local src ko
	[ "$(cat "$OUTDIR/modules/.kver" 2>/dev/null)" = "$KVER" ] || return 1
	for src in "$MODSRC"/*.c; do
		ko=$OUTDIR/modules/$(basename "${src%.c}").ko
		[ "$ko" -nt "$src" ] && [ "$ko" -nt "$MODSRC/Kbuild" ] && [ "$ko" -nt "$MODSRC/Makefile" ] || return 1
	done
}

if ! mods_fresh; then
	STEP="building e2e/modules against $KDIR"
	# A different KVER means a different kernel: start from clean objects.
	[ "$(cat "$OUTDIR/modules/.kver" 2>/dev/null)" = "$KVER" ] || rm -rf "$OUTDIR/modules"
	log=$(mktemp)
	if ! make -C "$MODSRC" KDIR="$KDIR" OUT="$OUTDIR/modules" >"$log" 2>&1; then
		cat "$log" >&2; rm -f "$log"
		die "building the test modules against $KDIR failed (output above)"
	fi
	rm -f "$log"
	for ko in "$OUTDIR"/modules/*.ko; do
		vm=$(modinfo -F vermagic "$ko" | cut -d' ' -f1)
		[ "$vm" = "$KVER" ] || die "$ko has vermagic $vm, expected $KVER"
	done
	echo "$KVER" >"$OUTDIR/modules/.kver"
fi

trap - ERR
mods=$(cd "$OUTDIR/modules" && ls -- *.ko | sed 's/\.ko$//' | tr '\n' ' ')
secs=$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "$PROG: ok KVER=$KVER vmdir=$OUTDIR modules: ${mods% } (${secs}s)"
