#!/bin/sh
# Derive the 16 GiB and 256 GiB machine trees (seed incident 3) from the
# files captured on the 6.1 VM (vm-crashkernel-64M/, written by
# e2e/check_test.go with KT_UPDATE_FIXTURES=1). Only the sizes change: the
# System RAM ranges are laid out as QEMU's q35 does above 2 GiB (2 GiB low,
# the rest from 4 GiB up), the reservation is the seed's crashkernel=128M,
# loaded, and MemTotal is RAM less the reservation and ~2.5% the kernel
# keeps (struct pages, page tables); only the non-root fallback reads it.
#   cd check/testdata && sh mksized.sh
set -eu
src=vm-crashkernel-64M
mk() { # name, high RAM end (exclusive, hex), MemTotal kB
	d=$1
	rm -rf "$d"
	mkdir -p "$d/proc/sys/kernel/random" "$d/sys/kernel"
	sed -e 's/crashkernel=64M/crashkernel=128M/' "$src/cmdline" >"$d/proc/cmdline"
	cp "$src/stat" "$d/proc/stat"
	cp "$src/boot_id" "$d/proc/sys/kernel/random/boot_id"
	sed -e "s/^MemTotal: .*/MemTotal:       $3 kB/" "$src/meminfo" >"$d/proc/meminfo"
	echo 134217728 >"$d/sys/kernel/kexec_crash_size"
	echo 1 >"$d/sys/kernel/kexec_crash_loaded"
	# The VM's map up to the kernel bss, then 2 GiB low RAM with the
	# 128 MiB reservation at its top, then high RAM.
	sed -n '1,/Kernel bss/p' "$src/iomem" | sed -e 's/^00100000-[0-9a-f]* : System RAM/00100000-7ffdefff : System RAM/' >"$d/proc/iomem"
	cat >>"$d/proc/iomem" <<IOMEM
  77000000-7effffff : Crash kernel
7ffdf000-7fffffff : Reserved
80000000-afffffff : PCI Bus 0000:00
IOMEM
	sed -n '/^b0000000-bfffffff : PCI MMCONFIG/,/^fffc0000-ffffffff : Reserved/p' "$src/iomem" >>"$d/proc/iomem"
	printf '100000000-%s : System RAM\n' "$2" >>"$d/proc/iomem"
}
# 16 GiB: 2 GiB low + 14 GiB high; 256 GiB: 2 GiB low + 254 GiB high.
mk root-16G 47fffffff 16311736
mk root-256G 407fffffff 261886264
