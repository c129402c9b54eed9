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
#
#   e2e/vm/setup.sh --suite SUITE OUTDIR     (e.g. --suite trixie build/vm-trixie)
#
# Another Debian suite's cloud kernel (the kernel matrix: bullseye, trixie),
# which this machine's apt sources do not list. The mirrors are derived from
# those sources (each URI with its suite's codename swapped for SUITE, so
# bookworm-updates/-security become SUITE-updates/-security); for each suite
# that exists there, InRelease is checked with gpgv against the Debian
# archive keyring and Packages.xz against InRelease. The kernel is the one
# the newest linux-image-cloud-amd64 metapackage depends on; the image
# (-unsigned preferred), its headers, -common headers and linux-kbuild debs
# are downloaded with curl, checked against Packages' SHA256 and unpacked
# (never installed). Same OUTDIR layout as above, plus
#   SUITE                       the suite, e.g. trixie
#   headers/                    the unpacked header debs (KDIR is
#                               headers/usr/src/linux-headers-KVER)
#   modules/*.ko                the test modules, if they build with this
#                               machine's gcc; if not, modules/ is absent and
#   modules-unbuilt             says why (the compiler's error); the VM tests
#                               then load shipped modules instead
# A suite's kernel is fetched once: delete OUTDIR to move to a newer one.
set -euo pipefail

PROG=setup.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MODSRC=$REPO/e2e/modules
SUITE='' OUTDIR=''
while [ $# -gt 0 ]; do
	case $1 in
	--suite) SUITE=${2:?--suite needs a Debian codename}; shift 2 ;;
	--suite=*) SUITE=${1#--suite=}; shift ;;
	*) OUTDIR=$1; shift ;;
	esac
done
OUTDIR=${OUTDIR:-$REPO/build/vm}
# The host's own suite is the default path (apt-get download, system headers).
HOST_SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ "$SUITE" != "$HOST_SUITE" ] || SUITE=''

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
[ -z "$SUITE" ] || PKGS+=(curl xz-utils gpgv debian-archive-keyring)
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

# True when OUTDIR/modules holds every test module, built for KVER after
# its source last changed.
mods_fresh() {
	local src ko
	[ "$(cat "$OUTDIR/modules/.kver" 2>/dev/null)" = "$KVER" ] || return 1
	for src in "$MODSRC"/*.c; do
		ko=$OUTDIR/modules/$(basename "${src%.c}").ko
		[ "$ko" -nt "$src" ] && [ "$ko" -nt "$MODSRC/Kbuild" ] && [ "$ko" -nt "$MODSRC/Makefile" ] || return 1
	done
}

# --- another suite's kernel (--suite) --------------------------------------
# Everything below runs only with --suite and ends in exit: the default
# (host suite) path after it is unchanged.
if [ -n "$SUITE" ]; then
	KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

	# "URI SUITE" for each deb source of this machine (deb822 .sources and
	# one-line .list files).
	apt_sources() {
		local f
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -f "$f" ] || continue
			awk 'function flush() { if (deb) for (i in u) for (j in su) print u[i], su[j]; deb = 0; delete u; delete su }
				/^[ \t]*$/ { flush(); next }
				/^#/ { next }
				tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
				tolower($1) == "uris:" { for (i = 2; i <= NF; i++) u[i] = $i }
				tolower($1) == "suites:" { for (i = 2; i <= NF; i++) su[i] = $i }
				END { flush() }' "$f"
		done
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -f "$f" ] || continue
			# deb [opts] URI SUITE COMPONENTS...
			sed -n 's/^[ \t]*deb[ \t]\+\(\[[^]]*\][ \t]\+\)\{0,1\}\([^ \t]\+\)[ \t]\+\([^ \t]\+\).*/\2 \3/p' "$f"
		done
	}

	# Downloads URL to FILE (curl; fails on HTTP errors).
	fetch() { curl -fsSL --retry 3 --connect-timeout 20 -o "$2" "$1"; }

	have_suite_image() {
		[ -s "$OUTDIR/KVER" ] && [ -s "$OUTDIR/vmlinuz" ] &&
			[ "$(cat "$OUTDIR/SUITE" 2>/dev/null)" = "$SUITE" ] &&
			[ -s "$OUTDIR/kernel/lib/modules/$(cat "$OUTDIR/KVER")/modules.dep" ] &&
			[ -f "$OUTDIR/headers/.done" ]
	}

	IDX=$OUTDIR/.index
	if ! have_suite_image; then
		STEP="reading this machine's apt sources"
		rm -rf "$IDX" "$OUTDIR/SUITE" "$OUTDIR/KVER"
		mkdir -p "$IDX"
		# bookworm -> SUITE, bookworm-updates -> SUITE-updates, ...
		mapfile -t bases < <(apt_sources | awk -v h="$HOST_SUITE" -v s="$SUITE" \
			'index($2, h) == 1 { sub(/\/+$/, "", $1); print $1 "/dists/" s substr($2, length(h) + 1) }' | sort -u)
		[ ${#bases[@]} -gt 0 ] || die "no deb source for $HOST_SUITE in /etc/apt/sources.list*: cannot derive a mirror for $SUITE"
		n=0
		for dist in "${bases[@]}"; do
			STEP="fetching $dist/InRelease"
			n=$((n + 1))
			if ! fetch "$dist/InRelease" "$IDX/$n.InRelease" 2>/dev/null; then
				echo "$PROG: $dist: no such suite on the mirror, skipped" >&2
				continue
			fi
			STEP="checking the signature of $dist/InRelease"
			gpgv --keyring "$KEYRING" "$IDX/$n.InRelease" 2>"$IDX/$n.gpgv" ||
				{ cat "$IDX/$n.gpgv" >&2; die "$dist/InRelease: bad or unknown signature (keyring $KEYRING)"; }
			want=$(awk '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 } s && $3 == "main/binary-amd64/Packages.xz" { print $1 }' "$IDX/$n.InRelease")
			[ -n "$want" ] || { echo "$PROG: $dist: no main/binary-amd64/Packages.xz, skipped" >&2; continue; }
			STEP="fetching $dist/main/binary-amd64/Packages.xz"
			fetch "$dist/main/binary-amd64/Packages.xz" "$IDX/$n.Packages.xz"
			[ "$(sha256sum <"$IDX/$n.Packages.xz" | cut -d' ' -f1)" = "$want" ] ||
				die "$dist/main/binary-amd64/Packages.xz does not match its InRelease SHA256"
			# One line per kernel package: POOLBASE PACKAGE VERSION FILENAME SHA256 DEPENDS
			xz -dc "$IDX/$n.Packages.xz" | awk -v base="${dist%/dists/*}" -v RS= -F '\n' '
				$1 ~ /^Package: linux-(image|headers|kbuild)-/ {
					p = v = fn = sh = d = ""
					for (i = 1; i <= NF; i++) {
						if ($i ~ /^Package: /) p = substr($i, 10)
						else if ($i ~ /^Version: /) v = substr($i, 10)
						else if ($i ~ /^Filename: /) fn = substr($i, 11)
						else if ($i ~ /^SHA256: /) sh = substr($i, 9)
						else if ($i ~ /^Depends: /) { d = substr($i, 10); gsub(/ /, "", d) }
					}
					print base, p, v, fn, sh, (d == "" ? "-" : d)
				}' >>"$IDX/kernel-packages"
			echo "$PROG: $dist: indexed" >&2
		done
		[ -s "$IDX/kernel-packages" ] || die "no kernel packages for $SUITE on the mirrors of this machine's apt sources (${bases[*]})"

		# The newest version of package $1 (optionally exactly version $2):
		# prints its index line.
		pkg_line() {
			local best='' l v
			while read -r l; do
				v=$(cut -d' ' -f3 <<<"$l")
				[ -z "${2:-}" ] || [ "$v" = "$2" ] || continue
				if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$(cut -d' ' -f3 <<<"$best")"; then best=$l; fi
			done < <(awk -v p="$1" '$2 == p' "$IDX/kernel-packages")
			[ -n "$best" ] && echo "$best"
		}
		# The versioned package NAME-... that line $1's Depends names with prefix $2.
		dep_named() { cut -d' ' -f6 <<<"$1" | tr ',|' '\n\n' | sed 's/(.*//' | grep -m1 "^$2" || true; }

		STEP="choosing $SUITE's cloud kernel"
		meta=$(pkg_line linux-image-cloud-amd64) || die "no linux-image-cloud-amd64 in $SUITE"
		img=$(dep_named "$meta" linux-image-)
		KVER=${img#linux-image-}
		VER=$(cut -d' ' -f3 <<<"$meta")
		[ -n "$KVER" ] || die "cannot read the kernel from linux-image-cloud-amd64's Depends: $meta"
		imglines=$(pkg_line "linux-image-$KVER-unsigned" "$VER" || true)
		imglines+=$'\n'$(pkg_line "linux-image-$KVER" "$VER" || true)
		grep -q . <<<"$imglines" || die "no linux-image-$KVER(-unsigned) $VER in $SUITE"
		hdrline=$(pkg_line "linux-headers-$KVER" "$VER") || die "no linux-headers-$KVER $VER in $SUITE"
		common=$(dep_named "$hdrline" "linux-headers-.*-common")
		kbuild=$(dep_named "$hdrline" linux-kbuild-)
		[ -n "$common" ] && [ -n "$kbuild" ] || die "linux-headers-$KVER: cannot find its -common and linux-kbuild dependencies"
		comline=$(pkg_line "$common" "$VER") || comline=$(pkg_line "$common") || die "no $common in $SUITE"
		kbline=$(pkg_line "$kbuild" "$VER") || kbline=$(pkg_line "$kbuild") || die "no $kbuild in $SUITE"
		echo "$PROG: $SUITE: kernel $KVER ($VER)" >&2

		# Downloads and checks the .deb of index line $1 into $IDX; prints its path.
		get_deb() {
			local base p v fn sh deb
			read -r base p v fn sh _ <<<"$1"
			deb=$IDX/$(basename "$fn")
			STEP="downloading $p $v"
			fetch "$base/$fn" "$deb" || { echo "$PROG: download $base/$fn failed" >&2; return 1; }
			[ "$(sha256sum <"$deb" | cut -d' ' -f1)" = "$sh" ] || die "$base/$fn does not match its SHA256 in Packages"
			echo "$deb"
		}
		# The mirror may lack one of the two (bullseye-security had the
		# signed image but not the unsigned one): take the first it has.
		imgdeb=''
		while read -r l; do
			[ -n "$l" ] || continue
			imgdeb=$(get_deb "$l") && break
		done <<<"$imglines"
		[ -n "$imgdeb" ] && [ -f "$imgdeb" ] || die "cannot download linux-image-$KVER(-unsigned) $VER"
		STEP="unpacking $(basename "$imgdeb")"
		rm -rf "$OUTDIR/kernel" "$OUTDIR/vmlinuz" "$OUTDIR/headers" "$OUTDIR/modules" "$OUTDIR/modules-unbuilt"
		dpkg-deb -x "$imgdeb" "$OUTDIR/kernel"
		# Merged-/usr packages (trixie) ship usr/lib/modules: keep the
		# kernel/lib/modules/KVER layout run.sh --kmod and the tests use.
		if [ ! -e "$OUTDIR/kernel/lib" ] && [ -d "$OUTDIR/kernel/usr/lib/modules" ]; then
			ln -s usr/lib "$OUTDIR/kernel/lib"
		fi
		[ -s "$OUTDIR/kernel/boot/vmlinuz-$KVER" ] || die "$(basename "$imgdeb") has no boot/vmlinuz-$KVER"
		[ -d "$OUTDIR/kernel/lib/modules/$KVER" ] || die "$(basename "$imgdeb") has no lib/modules/$KVER"
		cp "$OUTDIR/kernel/boot/vmlinuz-$KVER" "$OUTDIR/vmlinuz"
		STEP="running depmod on the unpacked modules"
		depmod -b "$OUTDIR/kernel" "$KVER"
		rm -f "$imgdeb"
		for l in "$hdrline" "$comline" "$kbline"; do
			deb=$(get_deb "$l") || die "cannot download $(cut -d' ' -f2,3 <<<"$l")"
			STEP="unpacking $(basename "$deb")"
			dpkg-deb -x "$deb" "$OUTDIR/headers"
			rm -f "$deb"
		done
		KDIR=$OUTDIR/headers/usr/src/linux-headers-$KVER
		[ -f "$KDIR/Makefile" ] || die "linux-headers-$KVER has no usr/src/linux-headers-$KVER/Makefile"
		# The flavour's Makefile includes the -common one by absolute path.
		sed -i "s|^include /usr/src/|include $OUTDIR/headers/usr/src/|" "$KDIR/Makefile"
		touch "$OUTDIR/headers/.done"
		echo "$SUITE" >"$OUTDIR/SUITE"
		echo "$KVER" >"$OUTDIR/KVER" # written last: marks the image as complete
		rm -rf "$IDX"
	fi
	KVER=$(cat "$OUTDIR/KVER")
	KDIR=$OUTDIR/headers/usr/src/linux-headers-$KVER

	# Test modules with this machine's gcc; a failure is recorded, not fatal:
	# the VM tests then use shipped modules on this kernel.
	# A recorded failure stands until a source changes.
	unbuilt_fresh() {
		local src
		[ -f "$OUTDIR/modules-unbuilt" ] || return 1
		for src in "$MODSRC"/*.c "$MODSRC/Kbuild" "$MODSRC/Makefile"; do
			[ "$OUTDIR/modules-unbuilt" -nt "$src" ] || return 1
		done
	}
	if ! unbuilt_fresh && ! mods_fresh; then
		rm -f "$OUTDIR/modules-unbuilt"
		STEP="building e2e/modules against $KDIR"
		rm -rf "$OUTDIR/modules"
		log=$OUTDIR/modules-build.log
		# The headers name the suite's compiler (CC=x86_64-linux-gnu-gcc-N);
		# when this machine lacks it, try its own gcc.
		ok=0 tried=''
		if make -C "$MODSRC" KDIR="$KDIR" OUT="$OUTDIR/modules" >"$log" 2>&1; then
			ok=1
		elif grep -q 'gcc-[0-9]*: not found' "$log"; then
			tried="$(grep -m1 'gcc-[0-9]*: not found' "$log" | sed 's/^.*: 1: //') (not in $HOST_SUITE); then with CC=gcc: "
			rm -rf "$OUTDIR/modules"
			make -C "$MODSRC" KDIR="$KDIR" OUT="$OUTDIR/modules" CC=gcc >"$log" 2>&1 && ok=1
		fi
		if [ "$ok" = 1 ]; then
			for ko in "$OUTDIR"/modules/*.ko; do
				vm=$(modinfo -F vermagic "$ko" | cut -d' ' -f1)
				[ "$vm" = "$KVER" ] || die "$ko has vermagic $vm, expected $KVER"
			done
			echo "$KVER" >"$OUTDIR/modules/.kver"
		else
			{
				echo "the test modules do not build against linux-headers-$KVER with $(gcc --version | head -n1):"
				echo "$tried$(grep -m1 -E 'error|not found' "$log" || tail -n1 "$log")"
				grep -E 'error|Error' "$log" | head -n8
				echo "(full log: $log)"
			} >"$OUTDIR/modules-unbuilt"
			rm -rf "$OUTDIR/modules"
		fi
	fi

	trap - ERR
	if [ -f "$OUTDIR/modules-unbuilt" ]; then
		mods="none, shipped modules only: $(head -n1 "$OUTDIR/modules-unbuilt" | sed 's/:$//') (see $OUTDIR/modules-unbuilt)"
	else
		mods=$(cd "$OUTDIR/modules" && ls -- *.ko | sed 's/\.ko$//' | tr '\n' ' ')
	fi
	secs=$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	echo "$PROG: ok SUITE=$SUITE KVER=$KVER vmdir=$OUTDIR modules: ${mods% } (${secs}s)"
	exit 0
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
