#!/usr/bin/env bash
# bench/serve.sh: the speed of `sockmedic serve` (see bench/README.md).
#
#   bench/serve.sh [--sockets N] [--requests R] [--cycles C] [--interval S] [--out FILE] [--small]
#
# Builds the network namespace of bench/run.sh (N ESTABLISHED TCP sockets held by
# ceil(N/19800) processes), starts `sockmedic serve --netns NS` on a loopback port,
# and measures:
#   1. scrape latency: R requests to /metrics one after the other, then R more from
#      4 clients at once (curl's time_total: connect to last byte), while
#      collections run on their own schedule: p50, p99, max;
#   2. the collection cycle: sockmedic_collection_duration_seconds of C cycles, and
#      serve's CPU time per cycle, against `sockmedic check --once --netns NS` run C
#      times (hyperfine) on the same sockets once serve is stopped;
#   3. serve's resident memory (VmRSS and its peak, VmHWM) after all of it.
# Checks, never asserts timings: the served counts are the namespace's (ESTABLISHED
# = N), every request answered 200, serve stops with exit 0 on SIGTERM.
set -euo pipefail

SOCKETS= REQUESTS= CYCLES= INTERVAL= OUT= SMALL=0
usage() {
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
	cat <<'EOF'
Options:
  --sockets N    sockets to hold (default 1000000; --small: 20000)
  --requests R   scrapes per phase (default 2000; --small: 200)
  --cycles C     collection cycles measured, and check runs (default 5; --small: 2)
  --interval S   serve's --interval in seconds (default 10; --small: 2)
  --out FILE     Markdown results (default bench/out/serve.md)
  --small        the CI version: 20k sockets, a minute
Environment: SMBENCH_NETNS (namespace name, default smbench-serve).
EOF
}
while [[ $# -gt 0 ]]; do
	case $1 in
	--sockets) SOCKETS=$2; shift 2 ;;
	--requests) REQUESTS=$2; shift 2 ;;
	--cycles) CYCLES=$2; shift 2 ;;
	--interval) INTERVAL=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--small) SMALL=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "serve.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
if [[ $SMALL == 1 ]]; then
	SOCKETS=${SOCKETS:-20000} REQUESTS=${REQUESTS:-200} CYCLES=${CYCLES:-2} INTERVAL=${INTERVAL:-2}
fi
SOCKETS=${SOCKETS:-1000000} REQUESTS=${REQUESTS:-2000} CYCLES=${CYCLES:-5} INTERVAL=${INTERVAL:-10}
for v in SOCKETS REQUESTS CYCLES INTERVAL; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || { echo "serve.sh: --${v,,} must be a number >= 1" >&2; exit 2; }
done
((SOCKETS >= 2)) || { echo "serve.sh: --sockets must be >= 2" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTDIR=$ROOT/bench/out/serve
OUT=${OUT:-$ROOT/bench/out/serve.md}
NS=${SMBENCH_NETNS:-smbench-serve}
SM=${CARGO_TARGET_DIR:-$ROOT/target}/release/sockmedic
HOLDER=$OUTDIR/holder
export LC_ALL=C

BENCH_NAME=serve-bench
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[[ $EUID -eq 0 ]] || die "needs root (network namespaces, every socket's process)"

need ip iproute2
need curl curl
need hyperfine hyperfine
need jq jq
need gcc gcc
need flock util-linux

# ---------------------------------------------------------------- cleanup
HOLDER_PID= SERVE_PID= OWN_NS=0
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM HUP
	[[ -n $SERVE_PID ]] && kill -KILL "$SERVE_PID" 2>/dev/null
	[[ -n $HOLDER_PID ]] && stop_pid "$HOLDER_PID"
	[[ $OWN_NS == 1 ]] && teardown_ns "$NS"
	if [[ $OWN_NS == 1 ]] && ns_exists "$NS"; then
		log "WARNING: could not delete namespace $NS"
		[[ $rc == 0 ]] && rc=1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- build
mkdir -p "$OUTDIR"
rm -f "$OUTDIR"/*.txt "$OUTDIR"/*.json "$OUT"
log "cargo build --release"
(cd "$ROOT" && cargo build --release --quiet -p sockmedic) >&2 || die "cargo build --release"
gcc -O2 -Wall -o "$HOLDER" "$ROOT/bench/holder.c" || die "gcc holder.c"

# ---------------------------------------------------------------- sockets
CONNS=$((SOCKETS / 2))
SOCKETS=$((CONNS * 2))
HARD_NOFILE=$(ulimit -Hn)
[[ $HARD_NOFILE == unlimited ]] && HARD_NOFILE=1048576
PER=$(((HARD_NOFILE - 64) / 2))
((PER > 9900)) && PER=9900
((PER >= 100)) || die "hard RLIMIT_NOFILE $HARD_NOFILE is too low"
PROCS=$(((CONNS + PER - 1) / PER))
avail_kb=$(awk '/^MemAvailable:/{print $2}' /proc/meminfo)
((avail_kb > SOCKETS * 4 + 1048576)) || die "$SOCKETS sockets need ~$((SOCKETS * 4 / 1024)) MiB"

claim_ns
log "namespace $NS: $SOCKETS sockets in $PROCS processes"
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096 >/dev/null
rm -f "$OUTDIR/ready"
t0=$SECONDS
ip netns exec "$NS" "$HOLDER" -n "$CONNS" -c "$PER" -p 20000 -r "$OUTDIR/ready" >"$OUTDIR/holder.log" 2>&1 &
HOLDER_PID=$!
until [[ -s $OUTDIR/ready ]]; do
	kill -0 "$HOLDER_PID" 2>/dev/null || die "holder exited: $(tail -n 5 "$OUTDIR/holder.log")"
	((SECONDS - t0 < 900)) || die "holders not ready after 15 minutes"
	sleep 0.2
done
log "holders ready in $((SECONDS - t0)) s"

# ---------------------------------------------------------------- serve
"$SM" serve --listen 127.0.0.1:0 --netns "$NS" --interval "${INTERVAL}s" 2>"$OUTDIR/serve.err" &
SERVE_PID=$!
ADDR=
for _ in $(seq 1 100); do
	ADDR=$(grep -o 'listening on http://[^ ]*' "$OUTDIR/serve.err" | sed 's#.*http://##' || true)
	[[ -n $ADDR ]] && break
	kill -0 "$SERVE_PID" 2>/dev/null || die "serve exited: $(cat "$OUTDIR/serve.err")"
	sleep 0.1
done
[[ -n $ADDR ]] || die "serve did not say where it listens"
URL=http://$ADDR
metric() { # metric NAME [LABEL-SUBSTRING]: the value of the first matching sample
	curl -sf "$URL/metrics" | awk -v n="$1" -v l="${2:-}" '!done && $1 ~ ("^" n "([{]|$)") && index($1, l) { print $2; done = 1 }'
}
cycle() { curl -sf -D - -o /dev/null "$URL/metrics" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-sockmedic-cycle" { print $2 }'; }
wait_cycle() { # wait_cycle N: until the served cycle is at least N
	local c
	for _ in $(seq 1 $((INTERVAL * 20 + 600))); do
		c=$(cycle || true)
		[[ -n $c && $c -ge $1 ]] && return 0
		kill -0 "$SERVE_PID" 2>/dev/null || die "serve exited: $(tail -n 5 "$OUTDIR/serve.err")"
		sleep 0.5
	done
	die "cycle $1 never came"
}
wait_cycle 2
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")
[[ $code == 200 ]] || die "/healthz answered $code: $(curl -s "$URL/healthz")"
est=$(metric sockmedic_tcp_sockets 'state="ESTABLISHED"')
[[ $est == "$SOCKETS" ]] || die "serve says ESTABLISHED $est in $NS, expected $SOCKETS"
BYTES=$(curl -s "$URL/metrics" | wc -c)
log "serve on $URL: cycle $(cycle), ESTABLISHED $est, /metrics $BYTES bytes"

# ---------------------------------------------------------------- scrapes
scrapes() { # scrapes FILE COUNT: per request "HTTP-CODE TIME-TOTAL PREVIOUS-SERVER-TIME"
	local i
	# sockmedic_scrape_duration_seconds in a response is the server's own time for the
	# /metrics request before it (from the request read to the last byte written).
	for ((i = 0; i < $2; i++)); do
		curl -s -w '\n@ %{http_code} %{time_total}\n' "$URL/metrics" |
			awk '$1 == "sockmedic_scrape_duration_seconds" { d = $2 } $1 == "@" { print $2, $3, d }'
	done >"$1"
}
C0=$(cycle)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
log "$REQUESTS sequential scrapes"
scrapes "$OUTDIR/seq.txt" "$REQUESTS"
log "$REQUESTS scrapes from 4 clients at once"
CLIENTS=()
for k in 1 2 3 4; do
	scrapes "$OUTDIR/par$k.txt" $((REQUESTS / 4)) &
	CLIENTS+=($!)
done
wait "${CLIENTS[@]}"
cat "$OUTDIR"/par?.txt >"$OUTDIR/par.txt"
for f in seq par; do
	bad=$(awk '$1 != 200' "$OUTDIR/$f.txt" | wc -l)
	((bad == 0)) || die "$bad scrapes did not answer 200"
done
C1=$(cycle)
stats() { # p50 p99 max in ms of the second column
	awk '{print $2 * 1000}' "$1" | sort -n | awk '{ v[NR] = $1 } END {
		i50 = int(NR * 0.50); if (i50 < 1) i50 = 1; i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
		printf "%.2f %.2f %.2f", v[i50], v[i99], v[NR] }'
}
read -r S50 S99 SMAX <<<"$(stats "$OUTDIR/seq.txt")"
read -r P50 P99 PMAX <<<"$(stats "$OUTDIR/par.txt")"
# The server's own time: the third column (of the request before each one).
awk 'NR > 1 { print $1, $3 }' "$OUTDIR/seq.txt" >"$OUTDIR/seq-server.txt"
cat "$OUTDIR"/par?.txt | awk '{ print $1, $3 }' >"$OUTDIR/par-server.txt"
read -r V50 V99 VMAX <<<"$(stats "$OUTDIR/seq-server.txt")"
read -r W50 W99 WMAX <<<"$(stats "$OUTDIR/par-server.txt")"
log "sequential: p50 $S50 ms, p99 $S99 ms, max $SMAX ms (server: $V50 / $V99 / $VMAX); 4 clients: p50 $P50 ms, p99 $P99 ms, max $PMAX ms (server: $W50 / $W99 / $WMAX) (cycles $C0..$C1 meanwhile)"

# ---------------------------------------------------------------- cycles
# The duration of C more cycles, read as each is published; serve's CPU time over them.
DUR=()
c=$(cycle)
CPU_A=$(awk '{print $14 + $15}' "/proc/$SERVE_PID/stat")
for ((i = 1; i <= CYCLES; i++)); do
	wait_cycle $((c + i))
	DUR+=("$(metric sockmedic_collection_duration_seconds)")
	log "cycle $((c + i)): $(printf '%.3f' "${DUR[-1]}") s"
done
CPU_B=$(awk '{print $14 + $15}' "/proc/$SERVE_PID/stat")
TICK=$(getconf CLK_TCK)
# CPU time per cycle: the ticks between the two readings cover the cycles measured
# (and nothing else but the /metrics polls above).
CPU_CYCLE=$(awk -v a="$CPU_A" -v b="$CPU_B" -v t="$TICK" -v n="$CYCLES" 'BEGIN{ printf "%.3f", (b - a) / t / n }')
RSS=$(awk '/^VmRSS:/{print $2}' "/proc/$SERVE_PID/status")
HWM=$(awk '/^VmHWM:/{print $2}' "/proc/$SERVE_PID/status")
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
CYCLE_MED=$(median "${DUR[@]}")
kill -TERM "$SERVE_PID"
rc=0
wait "$SERVE_PID" || rc=$?
SERVE_PID=
((rc == 0)) || die "serve exited $rc on SIGTERM"
log "serve stopped (exit 0); VmRSS $RSS KiB, peak $HWM KiB"

# ---------------------------------------------------------------- check --once
log "hyperfine: sockmedic check --once --netns $NS ($CYCLES runs)"
hyperfine -N -i --runs "$CYCLES" --style none --export-json "$OUTDIR/check.json" \
	"$SM check --once --json --netns $NS" >&2 || die "hyperfine check"
CHECK_MED=$(jq -r '.results[0].median' "$OUTDIR/check.json")
CHECK_CPU=$(jq -r '.results[0] | (.user + .system)' "$OUTDIR/check.json")

# ---------------------------------------------------------------- report
ms() { awk -v t="$1" 'BEGIN{ printf "%.1f ms", t * 1000 }'; }
s3() { awk -v t="$1" 'BEGIN{ printf "%.3f s", t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }'; }
CPU=$(lscpu 2>/dev/null | awk -F: '/^Model name/{gsub(/^ +/,"",$2); print $2; exit}')
REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
	echo "Sockets: **$SOCKETS** ESTABLISHED in $PROCS processes (network namespace \`$NS\`); \`sockmedic serve --netns $NS --interval ${INTERVAL}s\` (process scan on, kernel log read every cycle). Machine: $(nproc) cores, $CPU, Linux $(uname -r). Commit $REV, $(date -u +%Y-%m-%dT%H:%MZ)."
	echo
	echo "| scrape of /metrics ($BYTES bytes), $REQUESTS requests | p50 | p99 | max |"
	echo "|---|---:|---:|---:|"
	echo "| one client, one request after the other: curl's time_total | $S50 ms | $S99 ms | $SMAX ms |"
	echo "| ... sockmedic's own time (\`sockmedic_scrape_duration_seconds\`) | $V50 ms | $V99 ms | $VMAX ms |"
	echo "| 4 clients at once: curl's time_total | $P50 ms | $P99 ms | $PMAX ms |"
	echo "| ... sockmedic's own time | $W50 ms | $W99 ms | $WMAX ms |"
	echo
	echo "Collections went on meanwhile (cycles $C0 to $C1): no scrape waited for one. Load average before / after: $LOAD0 / $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	echo "| collection | median wall | CPU (user+sys) | ratio to check |"
	echo "|---|---:|---:|---:|"
	echo "| serve's cycle (\`sockmedic_collection_duration_seconds\`, $CYCLES cycles) | $(s3 "$CYCLE_MED") | $(s3 "$CPU_CYCLE") per cycle | $(ratio "$CYCLE_MED" "$CHECK_MED") (CPU $(ratio "$CPU_CYCLE" "$CHECK_CPU")) |"
	echo "| \`sockmedic check --once --json --netns $NS\` ($CYCLES runs) | $(s3 "$CHECK_MED") | $(s3 "$CHECK_CPU") | 1 |"
	echo
	echo "serve's memory after all of it: VmRSS $((RSS / 1024)) MiB, peak (VmHWM) $((HWM / 1024)) MiB."
} >"$OUT"
cat "$OUT"
