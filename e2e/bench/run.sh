#!/usr/bin/env bash
# make bench: one performance report, written to build/bench.md and stdout.
#
#   e2e/bench/run.sh [--vmdir build/vm] [--out build/bench.md] [--quick]
#                    [--wait-quiet SECONDS] [--mem MiB (3072)] [--timeout S]
#
# 1. Host: the decoder and boot-analysis Go benchmarks (ns, records/s and
#    allocations per record; the decoder goal is >= 5 M records/s, 0 allocs).
# 2. VM (Debian's kernel under QEMU, e2e/vm/run.sh): e2e/bench/ktbench, in
#    one boot, interleaved: finit_module time with no tracer, ktracer watch
#    and bpftrace's kretprobe:do_one_initcall one-liner; start-up to all
#    probes attached; resident memory; idle wake-ups. bpftrace and its
#    libraries come from Debian's package on this host.
# 3. The machine it ran on, and how busy it was: other QEMU processes and
#    the load average, sampled during the run. TCG timings on a shared
#    machine move with the load; the interleaving makes the ratios fair,
#    not the absolute figures portable.
#
#   --quick            a short VM run (2 rounds, 5 loads, 50 cycles, 3 s idle)
#                      to check the harness, not to quote
#   --wait-quiet S     first wait up to S seconds for no other QEMU to run
#
# It is a report, never a pass/fail test: it fails only when something
# cannot run. It installs what is missing (bpftrace; the VM via
# e2e/vm/setup.sh).
set -euo pipefail

PROG=bench/run.sh
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VMDIR=${VMDIR:-/var/cache/ktracer/vm-bookworm} OUT=$ROOT/build/bench.md QUICK='' WAITQ=0 MEM=3072 TIMEOUT=''
while [ $# -gt 0 ]; do
	case $1 in
	--vmdir) VMDIR=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--wait-quiet) WAITQ=$2; shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2 ;;
	*) echo "$PROG: unknown argument $1" >&2; exit 2 ;;
	esac
done
cd "$ROOT"
GO=${GO:-go}
log() { echo "$PROG: $*" >&2; }

# --- what it needs ---------------------------------------------------------
if ! command -v bpftrace >/dev/null; then
	log "installing bpftrace"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bpftrace >/dev/null
fi
[ -s "$VMDIR/vmlinuz" ] || e2e/vm/setup.sh "$VMDIR"
[ -f "$VMDIR/modules/kt_good.ko" ] || { log "no $VMDIR/modules/kt_good.ko: run e2e/vm/setup.sh $VMDIR"; exit 1; }

W=$(mktemp -d)
SAMPLER=''
cleanup() {
	[ -z "$SAMPLER" ] || kill "$SAMPLER" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# QEMU processes that are not descendants of this script (other VMs).
foreign_qemu_count() { foreign_qemu_pids | sort -u | wc -l; }
foreign_qemu_pids() {
	local pid p
	for pid in $(pgrep -f '^qemu-system' 2>/dev/null); do
		p=$pid
		while [ "$p" -gt 1 ] && [ "$p" != $$ ]; do
			p=$(awk '{ print $4 }' "/proc/$p/stat" 2>/dev/null || echo 1)
		done
		[ "$p" = $$ ] || echo "$pid"
	done
}

if [ "$WAITQ" -gt 0 ]; then
	end=$(($(date +%s) + WAITQ))
	while [ "$(foreign_qemu_count)" -gt 0 ] && [ "$(date +%s)" -lt "$end" ]; do
		log "waiting for $(foreign_qemu_count) other QEMU process(es) to finish"
		sleep 15
	done
fi

# Every 5 s: foreign QEMU processes and the 1-minute load average.
(
	while :; do
		echo "$(date +%s) $(foreign_qemu_count) $(cut -d' ' -f1 /proc/loadavg)"
		sleep 5
	done
) >"$W/load.txt" 2>/dev/null &
SAMPLER=$!
load_summary() { # FILE FROM-SECOND TO-SECOND
	awk -v a="$2" -v b="$3" '$1 >= a && $1 <= b' "$1" | sort -k3,3g | awk '
		{ n++; if ($2 > 0) busy++; if ($2 > q) q = $2; l[n] = $3 }
		END {
			if (n == 0) { print "no samples"; exit }
			printf "other QEMU VMs running in %d%% of %d samples (at most %d at once); 1-min load average median %s, max %s",
				100 * busy / n, n, q, l[int((n + 1) / 2)], l[n]
		}'
}

# --- host: Go benchmarks ----------------------------------------------------
log "host benchmarks: decoder, boot"
H0=$(date +%s)
$GO test -run '^$' -bench . -benchmem -count 3 ./decoder/ ./boot/ | tee "$W/gobench.txt" >&2
H1=$(date +%s)

# --- VM payload ---------------------------------------------------------------
log "building ktracer and ktbench (static)"
KTVER=$(git describe --tags --always --dirty 2>/dev/null || echo devel)
P=$W/payload
mkdir -p "$P/bin" "$P/lib" "$P/modules"
CGO_ENABLED=0 $GO build -trimpath -ldflags '-s -w' -o "$P/bin/ktracer" ./cmd/ktracer
CGO_ENABLED=0 $GO build -trimpath -ldflags '-s -w' -o "$P/bin/ktbench" ./e2e/bench/ktbench
e2e/kmod-payload.sh "$P"
cp "$VMDIR/modules/kt_good.ko" "$P/modules/"
BPFTRACE=$(readlink -f "$(command -v bpftrace)")
cp "$BPFTRACE" "$P/bin/bpftrace"
while read -r lib; do cp -L "$lib" "$P/lib/"; done < <(ldd "$BPFTRACE" | grep -o '/[^ ]*')
BPFTRACE_VERSION=$(dpkg-query -W -f '${Version}' bpftrace 2>/dev/null || bpftrace --version)
if [ -n "$QUICK" ]; then
	echo "-rounds 2 -loads 5 -cycles 50 -idle 3s" >"$P/ktbench.args"
	: "${TIMEOUT:=1800}"
else
	echo "-rounds 10 -loads 40 -cycles 500 -idle 10s" >"$P/ktbench.args"
	: "${TIMEOUT:=5400}"
fi
log "payload: $(du -sh "$P" | cut -f1) (bpftrace $BPFTRACE_VERSION with its libraries)"

# --- VM ---------------------------------------------------------------------------
V0=$(date +%s)
set +e
# Progress: ktbench's own lines from the console. A copy of the VM runner:
# bash reads a script as it runs, and the tree may be edited meanwhile.
cp e2e/vm/run.sh "$W/vm-run.sh"
: >"$W/console.log"
bash "$W/vm-run.sh" --vmdir "$VMDIR" --payload "$P" --script e2e/bench/guest.sh \
	--mem "$MEM" --timeout "$TIMEOUT" --log "$W/console.log" | grep --line-buffered -o 'ktbench: .*' >&2
vmst=${PIPESTATUS[0]}
set -e
V1=$(date +%s)
mkdir -p "$(dirname "$OUT")"
sed -n 's/^.*KT-OUT:raw://p' "$W/console.log" >"${OUT%.md}-raw.txt"
if [ "$vmst" != 0 ]; then
	log "the VM run failed (status $vmst); its console:"
	grep -v '^KT-OUT:raw:' "$W/console.log" | tail -n 40 >&2
	exit 1
fi

# --- report -----------------------------------------------------------------------
gobench() { # the median of -count runs, per benchmark: name ns/op records/s B/op allocs/op
	awk '/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		ns = rs = bo = al = ""
		for (i = 3; i < NF; i++) {
			if ($(i + 1) == "ns/op") ns = $i
			if ($(i + 1) == "records/s") rs = $i
			if ($(i + 1) == "B/op") bo = $i
			if ($(i + 1) == "allocs/op") al = $i
		}
		print name, ns, (rs == "" ? "-" : rs), bo, al
	}' "$W/gobench.txt" | sort -k1,1 -k2,2g | awk '
		{ n[$1]++; row[$1, n[$1]] = $0; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
		END { for (i = 1; i <= k; i++) { b = order[i]; print row[b, int((n[b] + 1) / 2)] } }'
}
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
{
	echo "### ktracer performance report"
	echo
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $CPU, $(nproc) cores, $(awk '/MemTotal/ { printf "%d GiB", $2 / 1048576 + 0.5 }' /proc/meminfo) RAM, host kernel $(uname -r); Go $($GO env GOVERSION | sed 's/^go//'); ktracer $KTVER (as built)."
	echo
	echo "#### Decoder (host, one core, median of 3 runs of \`go test -bench\`)"
	echo
	echo "| benchmark | ns/record | records/s | allocs/record | B/record | vs the 5 M records/s goal |"
	echo "|---|---:|---:|---:|---:|---:|"
	gobench | while read -r name ns rs bo al; do
		case $name in
		BenchmarkAnalyzeRealBoot) continue ;;
		esac
		if [ "$rs" = - ]; then rs=$(awk -v n="$ns" 'BEGIN { printf "%.0f", 1e9 / n }'); fi
		ratio=$(awk -v r="$rs" 'BEGIN { printf "%.1fx", r / 5e6 }')
		rsm=$(awk -v r="$rs" 'BEGIN { printf "%.1f M", r / 1e6 }')
		echo "| ${name#Benchmark} | $ns | $rsm | $al | $bo | $ratio |"
	done
	gobench | awk '$1 == "BenchmarkAnalyzeRealBoot" {
		printf "\nBoot analysis (`ktracer boot` on a real boot of 575 initcalls, trace + kernel log, text and SVG): %.1f ms, %s allocs, %.1f MB allocated per boot.\n", $2 / 1e6, $5, $4 / 1e6 }'
	echo
	echo "Host load during these: $(load_summary "$W/load.txt" "$H0" "$H1")."
	echo
	echo "#### Kernel side (QEMU TCG guest, one boot)"
	echo
	echo "QEMU $(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p'), TCG (no KVM), -cpu max, -smp 2, ${MEM} MiB; bpftrace $BPFTRACE_VERSION from Debian's package."
	sed -n 's/^.*KT-OUT:info://p' "$W/console.log" | sed 's/^/Guest: /; s/$/  /'
	echo
	sed -n 's/^.*KT-OUT:report://p' "$W/console.log"
	echo
	echo "Host load during the VM run ($((V1 - V0)) s): $(load_summary "$W/load.txt" "$V0" "$V1"). TCG emulates every guest instruction on the host's cores, so absolute times are those of the emulator; the comparison between modes is what the interleaving makes fair."
	if grep -q 'KT-OUT:dmesg:' "$W/console.log"; then
		echo
		echo "Guest kernel messages (BUG, Oops, WARNING, lost):"
		echo
		sed -n 's/^.*KT-OUT:dmesg:/    /p' "$W/console.log"
	fi
} >"$OUT"
cat "$OUT"
log "report written to $OUT, raw samples to ${OUT%.md}-raw.txt"
