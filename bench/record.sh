#!/usr/bin/env bash
# bench/record.sh: what `sockmedic record` costs (see bench/README.md): its CPU use at
# a 1 s interval and how fast its history file grows, on this host as it is.
#
#   bench/record.sh [--seconds N] [--interval D] [--procs-every LIST] [--extra-netns N]
#                   [--out FILE] [--small]
#
# For each --procs-every value (default "10 1": the default, and a process scan on
# every cycle), runs `sockmedic record --interval D --db TMP/N.db` for N seconds
# (default 120) and reads the recorder's utime + stime from /proc/PID/stat after its
# first cycles (so start-up is left out) and at the end: CPU % of one core = CPU
# seconds / wall seconds. Then stops it with SIGTERM (it must exit 0), and measures the
# file: bytes per cycle from the growth between two sizes taken after the first cycles
# and at the end (the WAL is checkpointed into the file when record stops), extrapolated
# to an hour and a day at that interval. Finally renders the history with
# `sockmedic report` and checks it holds the cycles.
#
# Writes Markdown (default bench/out/record.md; --small: bench/out/record-small.md).
# Exit status: non-zero only if something did not run (record failing, a wrong exit
# code, a report without the cycles). Timings and sizes are reported, never asserted.
# With --extra-netns N, N empty network namespaces (smrec-PID-I, loopback up) exist
# during the runs, to show what each namespace adds; they are deleted on exit.
set -euo pipefail

SECONDS_RUN= INTERVAL=1s PROCS_EVERY="10 1" OUT= SMALL=0 EXTRA_NETNS=0
usage() {
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
	cat <<'EOF'
Options:
  --seconds N         how long each recorder runs (default 120; --small: 15)
  --interval D        record's --interval (default 1s)
  --procs-every LIST  record's --procs-every values to measure, space-separated (default "10 1")
  --extra-netns N     create N empty network namespaces for the runs (default 0)
  --out FILE          Markdown results (default bench/out/record.md)
  --small             the CI version: 15 s per recorder
EOF
}
while [[ $# -gt 0 ]]; do
	case $1 in
	--seconds) SECONDS_RUN=$2; shift 2 ;;
	--interval) INTERVAL=$2; shift 2 ;;
	--procs-every) PROCS_EVERY=$2; shift 2 ;;
	--extra-netns) EXTRA_NETNS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--small) SMALL=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "record.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTDIR=$ROOT/bench/out
if [[ $SMALL == 1 ]]; then
	SECONDS_RUN=${SECONDS_RUN:-15}
	OUT=${OUT:-$OUTDIR/record-small.md}
fi
SECONDS_RUN=${SECONDS_RUN:-120} OUT=${OUT:-$OUTDIR/record.md}
[[ $SECONDS_RUN =~ ^[0-9]+$ && $SECONDS_RUN -ge 8 ]] || { echo "record.sh: --seconds must be a number >= 8" >&2; exit 2; }
[[ $EXTRA_NETNS =~ ^[0-9]+$ ]] || { echo "record.sh: --extra-netns must be a number" >&2; exit 2; }
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SM=$TARGET/release/sockmedic
export LC_ALL=C
TICK=$(getconf CLK_TCK)
WARMUP=5

BENCH_NAME=record
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

TMP=$(mktemp -d /tmp/sockmedic-bench-record.XXXXXX)
PID=
NAMESPACES=()
cleanup() {
	if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
	local n
	for n in "${NAMESPACES[@]}"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "cargo build --release -p sockmedic"
(cd "$ROOT" && cargo build --release -q -p sockmedic) >&2 || die "cargo build --release -p sockmedic"
mkdir -p "$OUTDIR"
for ((i = 0; i < EXTRA_NETNS; i++)); do
	n=smrec-$$-$i
	ip netns add "$n" || die "ip netns add $n"
	NAMESPACES+=("$n")
	ip netns exec "$n" ip link set lo up
done

# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat; the
# command name, field 2, is skipped whole since it may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
now() { date +%s.%N; }
# Bytes of the history's content: its pages in use, read through a second connection
# (which sees what the WAL holds; the files' sizes lag behind, by whole WAL
# checkpoints).
db_bytes() {
	python3 - "$1" <<'PY'
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
q = lambda p: c.execute(f"PRAGMA {p}").fetchone()[0]
print((q("page_count") - q("freelist_count")) * q("page_size"))
PY
}

tcp_alloc() { awk '/^TCP:/ { for (i = 2; i < NF; i++) if ($i == "alloc") print $(i + 1) }' /proc/net/sockstat; }
netns_count() { ip netns list 2>/dev/null | wc -l; }

ROWS=() CONDITIONS=()
for pe in $PROCS_EVERY; do
	db=$TMP/pe$pe.db
	log "sockmedic record --interval $INTERVAL --procs-every $pe for ${SECONDS_RUN}s"
	"$SM" record --db "$db" --interval "$INTERVAL" --procs-every "$pe" 2>"$TMP/pe$pe.err" &
	PID=$!
	# The clock starts once the file exists (the first cycle, with its process scan,
	# is done) and the warm-up has passed.
	for ((w = 0; w < 600; w++)); do
		kill -0 "$PID" 2>/dev/null || { cat "$TMP/pe$pe.err" >&2; die "record exited early"; }
		[[ -f $db ]] && break
		sleep 0.1
	done
	[[ -f $db ]] || die "record wrote no file in 60 s"
	sleep "$WARMUP"
	kill -0 "$PID" 2>/dev/null || { cat "$TMP/pe$pe.err" >&2; die "record exited early"; }
	c0=$(cpu_ticks "$PID") t0=$(now) s0=$(db_bytes "$db") a0=$(tcp_alloc) n0=$(netns_count)
	sleep $((SECONDS_RUN - WARMUP))
	c1=$(cpu_ticks "$PID") t1=$(now) s1=$(db_bytes "$db") a1=$(tcp_alloc) n1=$(netns_count)
	log "TCP sockets allocated host-wide: $a0 at the start, $a1 at the end; named network namespaces: $n0, then $n1"
	CONDITIONS+=("--procs-every $pe: TCP sockets allocated (sockstat alloc, every namespace) $a0 at the start and $a1 at the end of the measurement; $n0 then $n1 named network namespaces.")
	rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$PID/status")
	kill -TERM "$PID"
	set +e; wait "$PID"; rc=$?; set -e
	PID=
	[[ $rc == 0 ]] || { cat "$TMP/pe$pe.err" >&2; die "record exited $rc on SIGTERM (expected 0)"; }
	"$SM" report --db "$db" -o "$TMP/pe$pe.html" --json >"$TMP/pe$pe.json" || die "sockmedic report on the recording"
	cycles=$(sed -n 's/^  "cycles": \([0-9]*\),$/\1/p' "$TMP/pe$pe.json")
	[[ -n $cycles && $cycles -ge $((SECONDS_RUN / 2)) ]] || die "the report holds ${cycles:-no} cycles after ${SECONDS_RUN}s"
	grep -q 'id="chart-orphans"' "$TMP/pe$pe.html" || die "the report has no orphans chart"
	ROWS+=("$(awk -v pe="$pe" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v tick="$TICK" \
		-v s0="$s0" -v s1="$s1" -v cycles="$cycles" -v secs="$SECONDS_RUN" -v rss="$rss" -v iv="$INTERVAL" 'BEGIN {
		wall = t1 - t0; cpu = (c1 - c0) / tick
		per_cycle_cpu = cpu / (wall * cycles / secs) * 1000
		grow = (s1 - s0) / wall
		measured_cycles = wall * cycles / secs
		printf "| %s | %s | %.0f s | %d | %.2f s | **%.2f%%** | %.1f ms | %.0f B | %.1f MB | %.0f MB | %.1f MB |", \
			iv, pe, wall, cycles, cpu, 100 * cpu / wall, per_cycle_cpu, (s1 - s0) / measured_cycles, \
			grow * 3600 / 1e6, grow * 86400 / 1e6, rss / 1024
	}')")
	log "${ROWS[-1]}"
done

netns=$(ip netns list 2>/dev/null | wc -l)
procs=$(ls -d /proc/[0-9]* | wc -l)
alloc=$(tcp_alloc)
{
	echo "## sockmedic record: CPU and history growth ($(date -u +%Y-%m-%dT%H:%MZ))"
	echo
	echo "Machine: $(nproc) cores, $(uname -r), $procs processes, $((netns + 1)) network namespaces (host + $netns named, $EXTRA_NETNS of them made by this run), $alloc TCP sockets allocated (sockstat alloc, all namespaces), load average $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Each recorder ran ${SECONDS_RUN} s; CPU and growth measured from ${WARMUP} s on (start-up left out)."
	echo
	echo "| interval | --procs-every | measured | cycles | CPU time | CPU (% of one core) | CPU per cycle | bytes per cycle | per hour | per day | peak RSS |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${ROWS[@]}"
	echo
	printf -- '- %s\n' "${CONDITIONS[@]}"
} | tee "$OUT"
log "wrote $OUT"
