#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Make a built module one the kernel must refuse before its init runs:
#
#   spoil.sh crc KO SYMBOL   change the CRC recorded for SYMBOL in KO's
#                            __versions (a symbol version mismatch)
#   spoil.sh vermagic KO     drop "mod_unload" from KO's vermagic
#
# KO is rewritten in place with objcopy, which also drops an appended
# module signature (a shipped module then loads as unsigned). Prints the
# CRC it wrote (crc) or the new vermagic.
set -eu
what=$1 ko=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case $what in
crc)
	sym=$3
	objcopy --dump-section "__versions=$tmp/v" "$ko"
	# struct modversion_info: unsigned long crc; char name[56]
	n=$(($(wc -c <"$tmp/v") / 64)) i=0 found=
	while [ $i -lt $n ]; do
		name=$(dd if="$tmp/v" bs=1 skip=$((i * 64 + 8)) count=56 2>/dev/null | tr -d '\000')
		if [ "$name" = "$sym" ]; then found=$i; break; fi
		i=$((i + 1))
	done
	[ -n "$found" ] || { echo "spoil.sh: $ko has no __versions entry for $sym" >&2; exit 1; }
	old=$(od -An -tx4 -j $((found * 64)) -N4 "$tmp/v" | tr -d ' ')
	new=deadbeef
	[ "$old" != "$new" ] || new=feedface
	# little endian
	printf "\\$(printf %o 0x${new#??????})\\$(printf %o 0x$(echo $new | cut -c5-6))\\$(printf %o 0x$(echo $new | cut -c3-4))\\$(printf %o 0x$(echo $new | cut -c1-2))" |
		dd of="$tmp/v" bs=1 seek=$((found * 64)) conv=notrunc 2>/dev/null
	objcopy --update-section "__versions=$tmp/v" "$ko"
	echo "0x$new"
	;;
vermagic)
	objcopy --dump-section ".modinfo=$tmp/m" "$ko"
	grep -aq ' mod_unload ' "$tmp/m" || { echo "spoil.sh: $ko's vermagic has no mod_unload" >&2; exit 1; }
	sed 's/ mod_unload / /' "$tmp/m" >"$tmp/m2"
	objcopy --update-section ".modinfo=$tmp/m2" "$ko"
	tr '\000' '\n' <"$tmp/m2" | sed -n 's/^vermagic=//p'
	;;
*)
	echo "usage: spoil.sh crc KO SYMBOL | spoil.sh vermagic KO" >&2
	exit 2
	;;
esac
