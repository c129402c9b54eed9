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
#   VERSION                     the metapackage version the kernel came from
#   modules/*.ko                the test modules, built with the suite's own
#                               compiler (below); if they cannot be built,
#   modules-unbuilt             says why; the VM tests then load shipped
#                               modules instead
# A suite's kernel is fetched once: delete OUTDIR to move to a newer one;
# except for a suite listed in e2e/vm/pinned (sid): its newest kernel is
# resolved on every run and fetched when it changed. The pinned version is
# the fallback when the newest cannot be fetched (sid's metapackage can name
# binaries not on the mirror yet); with no index at all the cached kernel
# stays. 7.x packaging (sid) is handled: the image is linux-binary-KVER,
# the modules linux-modules-KVER (.ko.xz), both unpacked into kernel/.
#
# The suite's compiler: the test modules are built in a root filesystem of
# SUITE (mmdebstrap, essential variant + gcc-N make libelf-dev dwarves, gcc-N
# being the CC the headers name), cached in $KT_CACHE (/var/cache/ktracer)
# as rootfs-SUITE-PKGSHASH-KVER/ and kept across clones; the build runs
# there with chroot in a private mount namespace, OUTDIR and e2e/modules
# bind-mounted at their own paths. The mirror is this machine's, as above.
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
[ -z "$SUITE" ] || PKGS+=(curl xz-utils gpgv debian-archive-keyring mmdebstrap)
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
	[ "$OUTDIR/modules/rebuilt/kt_tablebomb.ko" -nt "$MODSRC/kt_tablebomb.c" ] || return 1
	[ "$OUTDIR/modules/rebuilt/kt_timebomb.ko" -nt "$MODSRC/kt_timebomb.c" ] || return 1
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
	KT_CACHE=${KT_CACHE:-/var/cache/ktracer}

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
	# SUITE's dists on this machine's mirrors, one URI/dists/DIST a line:
	# bookworm -> SUITE, bookworm-updates -> SUITE-updates, ...
	suite_dists() {
		apt_sources | awk -v h="$HOST_SUITE" -v s="$SUITE" \
			'index($2, h) == 1 { sub(/\/+$/, "", $1); print $1 "/dists/" s substr($2, length(h) + 1) }' | sort -u
	}

	# Downloads URL to FILE (curl; fails on HTTP errors).
	fetch() { curl -fsSL --retry 3 --connect-timeout 20 -o "$2" "$1"; }

	# A suite listed in e2e/vm/pinned is rolling: "SUITE VERSION KVER".
	PIN=$(awk -v s="$SUITE" '$1 == s { print $2, $3 }' "$REPO/e2e/vm/pinned" 2>/dev/null || true)

	have_suite_image() {
		[ -s "$OUTDIR/KVER" ] && [ -s "$OUTDIR/vmlinuz" ] &&
			[ "$(cat "$OUTDIR/SUITE" 2>/dev/null)" = "$SUITE" ] &&
			[ -s "$OUTDIR/kernel/lib/modules/$(cat "$OUTDIR/KVER")/modules.dep" ] &&
			[ -f "$OUTDIR/headers/.done" ]
	}

	IDX=$OUTDIR/.index
	# Fetches and checks SUITE's indexes into $IDX/kernel-packages.
	fetch_index() {
		local bases dist n want
		STEP="reading this machine's apt sources"
		rm -rf "$IDX"
		mkdir -p "$IDX"
		mapfile -t bases < <(suite_dists)
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
			# (7.x: linux-image-KVER depends on linux-binary-KVER,
			# linux-modules-KVER and linux-base-KVER, which hold the image
			# (usr/lib/modules/KVER/vmlinuz[.unsigned]), the modules and
			# modules.builtin/order.)
			xz -dc "$IDX/$n.Packages.xz" | awk -v base="${dist%/dists/*}" -v RS= -F '\n' '
				$1 ~ /^Package: linux-(image|headers|kbuild|binary|modules|base)-/ {
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
		[ -s "$IDX/kernel-packages" ] || { echo "$PROG: no kernel packages for $SUITE on the mirrors of this machine's apt sources (${bases[*]})" >&2; return 1; }
	}

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

	# The kernel image in unpacked tree $1: boot/vmlinuz-KVER, or 7.x's
	# usr/lib/modules/KVER/vmlinuz (signed) or vmlinuz.unsigned.
	kernel_image() {
		find "$1" \( -path "*/boot/vmlinuz-$2" -o -path "*/modules/$2/vmlinuz" -o -path "*/modules/$2/vmlinuz.unsigned" \) -type f -print -quit
	}

	# Fetches kernel KVER of metapackage version VER ($2, $1) into OUTDIR;
	# returns 1 (OUTDIR's kernel untouched) when a package is missing.
	fetch_kernel() {
		local KVER=$1 VER=$2 imglines hdrline common kbuild comline kbline modline baseline l deb imgdeb K=$OUTDIR/.kernel.new H=$OUTDIR/.headers.new
		# The mirror may lack one of the two (bullseye-security had the
		# signed image but not the unsigned one): take the first it has.
		# 7.x: linux-binary-(unsigned-)KVER holds the image.
		imglines=''
		for l in "linux-binary-unsigned-$KVER" "linux-binary-$KVER" "linux-image-$KVER-unsigned" "linux-image-$KVER"; do
			imglines+=$(pkg_line "$l" "$VER" || true)$'\n'
		done
		grep -q . <<<"$imglines" || { echo "$PROG: no linux-image-$KVER(-unsigned) or linux-binary $VER in $SUITE" >&2; return 1; }
		modline=$(pkg_line "linux-modules-$KVER" "$VER" || true)
		baseline=$(pkg_line "linux-base-$KVER" "$VER" || true)
		hdrline=$(pkg_line "linux-headers-$KVER" "$VER") || { echo "$PROG: no linux-headers-$KVER $VER in $SUITE" >&2; return 1; }
		common=$(dep_named "$hdrline" "linux-headers-.*-common")
		kbuild=$(dep_named "$hdrline" linux-kbuild-)
		[ -n "$common" ] && [ -n "$kbuild" ] || die "linux-headers-$KVER: cannot find its -common and linux-kbuild dependencies"
		comline=$(pkg_line "$common" "$VER") || comline=$(pkg_line "$common") || { echo "$PROG: no $common in $SUITE" >&2; return 1; }
		kbline=$(pkg_line "$kbuild" "$VER") || kbline=$(pkg_line "$kbuild") || { echo "$PROG: no $kbuild in $SUITE" >&2; return 1; }
		echo "$PROG: $SUITE: kernel $KVER ($VER)" >&2

		rm -rf "$K" "$H"
		imgdeb=''
		while read -r l; do
			[ -n "$l" ] || continue
			imgdeb=$(get_deb "$l") || continue
			STEP="unpacking $(basename "$imgdeb")"
			dpkg-deb -x "$imgdeb" "$K" || return 1
			rm -f "$imgdeb"
			# 7.x's linux-image-KVER is only a metapackage: try the next.
			if [ -n "$(kernel_image "$K" "$KVER")" ]; then break; fi
			rm -rf "$K"; imgdeb=''
		done <<<"$imglines"
		[ -n "$imgdeb" ] || { echo "$PROG: cannot download an image package of $KVER $VER holding the kernel" >&2; return 1; }
		for l in "$modline" "$baseline"; do
			[ -n "$l" ] || continue
			deb=$(get_deb "$l") || return 1
			STEP="unpacking $(basename "$deb")"
			dpkg-deb -x "$deb" "$K" || return 1
			rm -f "$deb"
		done
		for l in "$hdrline" "$comline" "$kbline"; do
			deb=$(get_deb "$l") || return 1
			STEP="unpacking $(basename "$deb")"
			dpkg-deb -x "$deb" "$H" || return 1
			rm -f "$deb"
		done
		# Complete: replace OUTDIR's kernel.
		rm -rf "$OUTDIR/kernel" "$OUTDIR/vmlinuz" "$OUTDIR/headers" "$OUTDIR/modules" "$OUTDIR/modules-unbuilt" "$OUTDIR/KVER"
		mv "$K" "$OUTDIR/kernel" && mv "$H" "$OUTDIR/headers" || die "cannot move the unpacked kernel into $OUTDIR"
		# Merged-/usr packages (trixie) ship usr/lib/modules and usr/boot:
		# keep the kernel/lib/modules/KVER layout run.sh --kmod and the
		# tests use.
		if [ ! -e "$OUTDIR/kernel/lib" ] && [ -d "$OUTDIR/kernel/usr/lib/modules" ]; then
			ln -s usr/lib "$OUTDIR/kernel/lib"
		fi
		l=$(kernel_image "$OUTDIR/kernel" "$KVER")
		[ -s "$l" ] || die "no boot/vmlinuz-$KVER in the image package"
		[ -d "$OUTDIR/kernel/lib/modules/$KVER" ] || die "no lib/modules/$KVER in $KVER's packages"
		cp "$l" "$OUTDIR/vmlinuz" || die "cannot copy $l"
		STEP="running depmod on the unpacked modules"
		depmod -b "$OUTDIR/kernel" "$KVER" || die "depmod -b $OUTDIR/kernel $KVER failed"
		KDIR=$OUTDIR/headers/usr/src/linux-headers-$KVER
		[ -f "$KDIR/Makefile" ] || die "linux-headers-$KVER has no usr/src/linux-headers-$KVER/Makefile"
		touch "$OUTDIR/headers/.done"
		echo "$SUITE" >"$OUTDIR/SUITE"
		echo "$VER" >"$OUTDIR/VERSION"
		echo "$KVER" >"$OUTDIR/KVER" # written last: marks the image as complete
	}

	# A kernel is fetched once; a rolling (pinned) suite's is re-resolved
	# every run: the newest metapackage, else the pin, else the cached one.
	if ! have_suite_image || [ -n "$PIN" ]; then
		rm -f "$OUTDIR/RESOLVED"
		if fetch_index; then
			STEP="choosing $SUITE's cloud kernel"
			why=''
			if meta=$(pkg_line linux-image-cloud-amd64); then
				img=$(dep_named "$meta" linux-image-)
				KVER=${img#linux-image-} VER=$(cut -d' ' -f3 <<<"$meta")
				[ -n "$KVER" ] || die "cannot read the kernel from linux-image-cloud-amd64's Depends: $meta"
				if have_suite_image && [ "$(cat "$OUTDIR/VERSION" 2>/dev/null)" = "$VER" ] && [ "$(cat "$OUTDIR/KVER")" = "$KVER" ]; then
					echo "newest $VER (cached)" >"$OUTDIR/RESOLVED"
				elif fetch_kernel "$KVER" "$VER"; then
					echo "newest $VER" >"$OUTDIR/RESOLVED"
				else
					why="the newest, $KVER $VER, cannot be fetched"
				fi
			else
				why="no linux-image-cloud-amd64 in $SUITE"
			fi
			if [ -n "$why" ]; then
				[ -n "$PIN" ] || die "$why"
				read -r pver pkver <<<"$PIN"
				echo "$PROG: $why: falling back to the pinned $pkver $pver (e2e/vm/pinned)" >&2
				if have_suite_image && [ "$(cat "$OUTDIR/VERSION" 2>/dev/null)" = "$pver" ]; then
					echo "pinned $pver (cached): $why" >"$OUTDIR/RESOLVED"
				else
					fetch_kernel "$pkver" "$pver" || die "$why, and the pinned $pkver $pver cannot be fetched either"
					echo "pinned $pver: $why" >"$OUTDIR/RESOLVED"
				fi
			fi
		else
			have_suite_image || die "no kernel packages for $SUITE on the mirrors of this machine's apt sources"
			echo "cached $(cat "$OUTDIR/VERSION" 2>/dev/null): the index of $SUITE could not be read" >"$OUTDIR/RESOLVED"
			echo "$PROG: $SUITE: no index: keeping the cached kernel" >&2
		fi
		rm -rf "$IDX" "$OUTDIR/.kernel.new" "$OUTDIR/.headers.new"
	fi
	KVER=$(cat "$OUTDIR/KVER")
	KDIR=$OUTDIR/headers/usr/src/linux-headers-$KVER
	# The flavour's Makefile names the -common one (and on 7.x its own
	# KBUILD_OUTPUT) by absolute path under /usr/src.
	if grep -qE '^(include |KBUILD_OUTPUT=)/usr/src/' "$KDIR/Makefile"; then
		sed -i -E "s#^(include |KBUILD_OUTPUT=)/usr/src/#\1$(readlink -f "$OUTDIR/headers")/usr/src/#" "$KDIR/Makefile" ||
			die "cannot edit $KDIR/Makefile"
	fi

	# The compiler package the headers name: CC = ...gcc-14 -> gcc-14.
	suite_cc() {
		local cc
		cc=$(sed -n 's/^CC = .*[^a-z]\(gcc-[0-9][0-9]*\)[ \t]*$/\1/p' "$KDIR/.kernelvariables" 2>/dev/null | head -n1)
		[ -n "$cc" ] || cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="[^ ]*-\(gcc-[0-9][0-9]*\) .*/\1/p' "$KDIR/include/config/auto.conf" 2>/dev/null | head -n1)
		[ -n "$cc" ] || cc=gcc
		echo "$cc"
	}

	# SUITE's root filesystem with its compiler, made once per kernel and
	# package set: prints its directory.
	suite_rootfs() {
		local pkgs key root lock dists d tmp src=()
		pkgs="$(suite_cc) make libelf-dev dwarves"
		key=$(echo "$SUITE $pkgs" | sha256sum | cut -c1-8)
		root=$KT_CACHE/rootfs-$SUITE-$key-$KVER
		mkdir -p "$KT_CACHE"
		lock=$KT_CACHE/rootfs-$SUITE.lock
		exec 9>"$lock"
		flock 9
		if [ ! -f "$root/.done" ]; then
			STEP="making $SUITE's root filesystem ($pkgs)"
			mapfile -t dists < <(suite_dists)
			for d in "${dists[@]}"; do
				curl -fsSI --connect-timeout 20 "$d/InRelease" >/dev/null 2>&1 || continue
				src+=("deb [signed-by=$KEYRING] ${d%/dists/*} ${d##*/dists/} main")
			done
			[ ${#src[@]} -gt 0 ] || { echo "$PROG: no mirror serves $SUITE (${dists[*]})" >&2; flock -u 9; return 1; }
			tmp=$root.tmp
			rm -rf "$tmp"
			# Expired Release files (sid, old suites): the signature is
			# still checked.
			if ! mmdebstrap --quiet --mode=root --variant=essential --components=main \
				--include="${pkgs// /,}" --aptopt='Acquire::Check-Valid-Until "false"' \
				"$SUITE" "$tmp" "${src[@]}" >"$OUTDIR/rootfs.log" 2>&1; then
				echo "$PROG: mmdebstrap $SUITE failed (log: $OUTDIR/rootfs.log)" >&2
				tail -n5 "$OUTDIR/rootfs.log" >&2
				rm -rf "$tmp"; flock -u 9; return 1
			fi
			echo "$SUITE $pkgs" >"$tmp/.done"
			# Older roots of this suite (a previous kernel) go.
			find "$KT_CACHE" -maxdepth 1 -name "rootfs-$SUITE-*" ! -name "$(basename "$tmp")" -exec rm -rf {} +
			mv "$tmp" "$root"
		fi
		flock -u 9
		echo "$root"
	}

	# Runs make in ROOT ($1) with OUTDIR, the headers and the module
	# sources bind-mounted at their own paths.
	chroot_make() {
		local root=$1; shift
		unshare --mount --propagation private /bin/sh -ec '
			root=$1; shift
			for d in "$OUTDIR" "$(readlink -f "$OUTDIR/headers")" "$MODSRC"; do
				mkdir -p "$root$d"
				mount --bind "$d" "$root$d"
			done
			mount -o remount,bind,ro "$root$MODSRC"
			# objtool (7.x) reads /proc.
			mount -t proc proc "$root/proc"
			exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 make "$@"
		' sh "$root" "$@"
	}

	# A recorded failure stands until a source (or this script) changes.
	unbuilt_fresh() {
		local src
		[ -f "$OUTDIR/modules-unbuilt" ] || return 1
		for src in "$MODSRC"/*.c "$MODSRC/Kbuild" "$MODSRC/Makefile" "$REPO/e2e/vm/setup.sh"; do
			[ "$OUTDIR/modules-unbuilt" -nt "$src" ] || return 1
		done
	}
	# Modules built before the release root filesystems (with this
	# machine's gcc) have no .built-with: they are rebuilt.
	if ! unbuilt_fresh && ! { mods_fresh && [ -f "$OUTDIR/modules/.built-with" ]; }; then
		rm -f "$OUTDIR/modules-unbuilt"
		rm -rf "$OUTDIR/modules"
		log=$OUTDIR/modules-build.log
		export OUTDIR MODSRC
		ok=0 why=''
		T1=$(date +%s.%N)
		if root=$(suite_rootfs); then
			T2=$(date +%s.%N)
			STEP="building e2e/modules against $KDIR in $root"
			if chroot_make "$root" -C "$MODSRC" KDIR="$KDIR" OUT="$OUTDIR/modules" >"$log" 2>&1; then
				ok=1
				awk -v a="$T1" -v b="$T2" -v c="$(date +%s.%N)" -v w="$SUITE's $(suite_cc)" \
					'BEGIN { printf "%s; root filesystem %.1fs, modules %.1fs\n", w, b - a, c - b }' >"$OUTDIR/modules/.built-with"
			else
				why="the build in $root failed: $(grep -m1 -E 'error|not found' "$log" || tail -n1 "$log")"
			fi
		else
			why="no $SUITE root filesystem (mmdebstrap: see $OUTDIR/rootfs.log)"
		fi
		if [ "$ok" = 1 ]; then
			for ko in "$OUTDIR"/modules/*.ko; do
				vm=$(modinfo -F vermagic "$ko" | cut -d' ' -f1)
				[ "$vm" = "$KVER" ] || die "$ko has vermagic $vm, expected $KVER"
			done
			echo "$KVER" >"$OUTDIR/modules/.kver"
		else
			{
				echo "the test modules do not build against linux-headers-$KVER with $SUITE's $(suite_cc):"
				echo "$why"
				grep -E 'error|Error' "$log" 2>/dev/null | head -n8
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
		# Built in this run: how long the root filesystem and the build took.
		[ "${ok:-0}" != 1 ] || mods+="(built with $(cat "$OUTDIR/modules/.built-with"))"
	fi
	resolved=''
	[ ! -f "$OUTDIR/RESOLVED" ] || resolved=" resolved: $(cat "$OUTDIR/RESOLVED")"
	secs=$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	echo "$PROG: ok SUITE=$SUITE KVER=$KVER$resolved vmdir=$OUTDIR modules: ${mods% } (${secs}s)"
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
