#!/usr/bin/env bash
# bench/run.sh: the speed benchmark of sockmedic (see bench/README.md).
#
#   bench/run.sh [--sockets N] [--runs R] [--out FILE] [--small] [--no-sockmedic] [--keep]
#                [--slow-timeout S]
#
# Builds a network namespace holding N ESTABLISHED TCP sockets (default 1,000,000),
# times sockmedic next to ss, ss | awk and a minimal sock_diag loop (the kernel's
# floor) with hyperfine, and the attribution of sockets to processes (sockmedic procs)
# next to a bare /proc/PID/fd readlink loop and, once each, ss -tanp and lsof;
# measures peak RSS with GNU time, checks that every tool counts the same sockets per
# state and that sockmedic attributes every holder's sockets, and writes Markdown tables.
#
# Exit status: non-zero only if something did not run, or the counts of sockmedic,
# ss, the floor and the fd loop differ. Timings are reported, never asserted.
set -euo pipefail

SOCKETS= RUNS= OUT= SMALL=0 SKIP_SM=0 KEEP=0 SLOW_TIMEOUT=
usage() {
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
	cat <<'EOF'
Options:
  --sockets N      sockets to hold (default 1000000; --small: 20000); N/2 connections
  --runs R         timed rounds, each running every command once (default 5; --small: 2), after 1 warm-up round
  --out FILE       Markdown results (default bench/out/results.md)
  --small          the CI version: 20k sockets, 2 runs, a couple of minutes
  --no-sockmedic   time only the reference commands (before the binary exists)
  --keep           leave the namespace and holders up at the end (Ctrl-C to tear down)
  --slow-timeout S run `ss -tanp` and `lsof -nP -iTCP` once each, killed after S seconds
                   (default 1800; --small: 300); 0 skips them
Environment: SMBENCH_NETNS (namespace name, default smbench).
EOF
}
while [[ $# -gt 0 ]]; do
	case $1 in
	--sockets) SOCKETS=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--small) SMALL=1; shift ;;
	--no-sockmedic) SKIP_SM=1; shift ;;
	--keep) KEEP=1; shift ;;
	--slow-timeout) SLOW_TIMEOUT=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
if [[ $SMALL == 1 ]]; then
	SOCKETS=${SOCKETS:-20000} RUNS=${RUNS:-2} SLOW_TIMEOUT=${SLOW_TIMEOUT:-300}
fi
SOCKETS=${SOCKETS:-1000000} RUNS=${RUNS:-5} SLOW_TIMEOUT=${SLOW_TIMEOUT:-1800}
[[ $SLOW_TIMEOUT =~ ^[0-9]+$ ]] || { echo "run.sh: --slow-timeout must be a number of seconds" >&2; exit 2; }
[[ $SOCKETS =~ ^[0-9]+$ && $SOCKETS -ge 2 ]] || { echo "run.sh: --sockets must be a number >= 2" >&2; exit 2; }
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || { echo "run.sh: --runs must be a number >= 1" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTDIR=$ROOT/bench/out
JSONDIR=$OUTDIR/json
OUT=${OUT:-$OUTDIR/results.md}
NS=${SMBENCH_NETNS:-smbench}
SM=$ROOT/target/release/sockmedic
HOLDER=$OUTDIR/holder
FLOOR=$OUTDIR/floor
FDLOOP=$OUTDIR/fdloop
export LC_ALL=C # the same sort order and number format on every machine

BENCH_NAME=bench
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

[[ $EUID -eq 0 ]] || die "needs root (network namespaces, sock_diag of every socket)"

# ---------------------------------------------------------------- tools
need ip iproute2
need ss iproute2
need hyperfine hyperfine
need /usr/bin/time time
need jq jq
need gcc gcc
need awk gawk
need sort coreutils
need lscpu util-linux
need sysctl procps
need timeout coreutils
need flock util-linux
[[ $SLOW_TIMEOUT == 0 ]] || need lsof lsof

# ---------------------------------------------------------------- cleanup
HOLDER_PID=
OWN_NS=0 # 1 once this run holds the lock on the name $NS: only then is it torn down
cleanup() {
	local rc=$? t_down=$SECONDS
	set +e
	trap - EXIT INT TERM HUP
	if [[ -n $HOLDER_PID ]] && kill -0 "$HOLDER_PID" 2>/dev/null; then
		log "tearing down: stopping the holders"
		stop_pid "$HOLDER_PID"
	fi
	[[ $OWN_NS == 1 ]] && teardown_ns "$NS"
	log "teardown done after $((SECONDS - t_down))s"
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
mkdir -p "$OUTDIR" "$JSONDIR"
rm -f "$JSONDIR"/*.json "$JSONDIR"/*.rss "$JSONDIR"/*.once "$JSONDIR"/*.time "$OUT" \
	"$OUTDIR"/lsof.* "$OUTDIR"/ss_tanp.* "$OUTDIR"/ss-tanp.txt
if [[ $SKIP_SM == 0 ]]; then
	log "cargo build --release (workspace)"
	(cd "$ROOT" && cargo build --release --quiet) >&2 || die "cargo build --release"
	[[ -x $SM ]] || die "no $SM after the build"
fi
log "gcc bench/holder.c bench/floor.c bench/fdloop.c"
gcc -O2 -Wall -o "$HOLDER" "$ROOT/bench/holder.c" || die "gcc holder.c"
gcc -O2 -Wall -o "$FLOOR" "$ROOT/bench/floor.c" || die "gcc floor.c"
gcc -O2 -Wall -o "$FDLOOP" "$ROOT/bench/fdloop.c" || die "gcc fdloop.c"

# ---------------------------------------------------------------- capacity checks
CONNS=$((SOCKETS / 2))
SOCKETS=$((CONNS * 2))
HARD_NOFILE=$(ulimit -Hn)
[[ $HARD_NOFILE == unlimited ]] && HARD_NOFILE=1048576
PER=$(((HARD_NOFILE - 64) / 2))
((PER > 9900)) && PER=9900 # 20000 fds: 19800 sockets + listener + stdio
((PER >= 100)) || die "hard RLIMIT_NOFILE $HARD_NOFILE is too low"
PROCS=$(((CONNS + PER - 1) / PER))
need_kb=$((SOCKETS * 4))                                    # ~3.5 KiB per socket, rounded up
avail_kb=$(awk '/^MemAvailable:/{print $2}' /proc/meminfo)
((avail_kb > need_kb + 1048576)) ||
	die "$SOCKETS sockets need ~$((need_kb / 1024)) MiB; only $((avail_kb / 1024)) MiB available"
read -r files_used _ files_max </proc/sys/fs/file-nr
((files_max - files_used > SOCKETS + 10000)) ||
	die "fs.file-max ($files_max, $files_used in use) is too low for $SOCKETS sockets (host-wide; not changed by this script)"

# ---------------------------------------------------------------- namespace
claim_ns
log "namespace $NS: $SOCKETS sockets = $CONNS loopback connections in $PROCS processes"
ip netns add "$NS"
ip -n "$NS" link set lo up
# per-namespace limits: room in the accept queue for the holders' batches
ip netns exec "$NS" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096 >/dev/null

rm -f "$OUTDIR/ready"
t0=$(date +%s.%N)
ip netns exec "$NS" "$HOLDER" -n "$CONNS" -c "$PER" -p 20000 -r "$OUTDIR/ready" >"$OUTDIR/holder.log" 2>&1 &
HOLDER_PID=$!
deadline=$((SECONDS + 900))
until [[ -s $OUTDIR/ready ]]; do
	kill -0 "$HOLDER_PID" 2>/dev/null || die "holder exited: $(tail -n 5 "$OUTDIR/holder.log")"
	((SECONDS < deadline)) || die "holders not ready after 15 minutes"
	sleep 0.2
done
t1=$(date +%s.%N)
SETUP_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
log "$(cat "$OUTDIR/holder.log") in ${SETUP_S}s"

inuse=$(ip netns exec "$NS" awk '/^TCP:/{for(i=2;i<NF;i++) if($i=="inuse") print $(i+1)}' /proc/net/sockstat)
((inuse >= SOCKETS)) || die "sockstat in $NS says TCP inuse $inuse, expected >= $SOCKETS"
ip netns exec "$NS" ss -s >"$OUTDIR/ss-s.txt"
log "sockstat in $NS: TCP inuse $inuse; ss -s: $(grep '^TCP:' "$OUTDIR/ss-s.txt")"

# Timings with the holders gone (someone tore the namespace down) would mean nothing.
holders_alive() {
	kill -0 "$HOLDER_PID" 2>/dev/null || die "the holders are gone (killed from outside?): $(tail -n 3 "$OUTDIR/holder.log")"
	ns_exists "$NS" || die "namespace $NS is gone (removed from outside?)"
}

# ---------------------------------------------------------------- correctness
# Per-state counts, as "STATE COUNT" lines sorted by state, in the design's names.
# BOUND-INACTIVE and UNHASHED are left out: neither ss nor the floor asks for them.
norm() { awk '$2 > 0 && $1 != "TOTAL" && $1 != "BOUND-INACTIVE" && $1 != "UNHASHED"' | sort; }
counts_floor() { ip netns exec "$NS" "$FLOOR" | norm; }
counts_ss() {
	ip netns exec "$NS" ss -tan | awk '
		BEGIN { m["ESTAB"] = "ESTABLISHED"; m["UNCONN"] = "CLOSE" }
		NR > 1 { c[$1 in m ? m[$1] : $1]++ }
		END { for (s in c) print s, c[s] }' | norm
}
# sockmedic JSON on stdin -> counts of the namespace named like $NS (or the only one)
counts_json() {
	jq -r --arg ns "$NS" '
		(.netns // []) as $all
		| ([$all[] | select(any((.names // [])[]; tostring | test("(^|/)" + $ns + "$")))]) as $m
		| (if ($m | length) > 0 then $m[0] elif ($all | length) == 1 then $all[0] else empty end)
		| (.states // {}) | to_entries[] | "\(.key) \(.value)"' | norm
}
CHECK_FAIL=0
compare() { # compare NAME FILE REFERENCE-FILE
	if diff -u "$3" "$2" >"$OUTDIR/diff.txt"; then
		log "counts: $1 = floor ($(tr '\n' ' ' <"$2"))"
	else
		log "COUNTS DIFFER: $1 vs floor:"
		cat "$OUTDIR/diff.txt" >&2
		CHECK_FAIL=1
	fi
}
counts_floor >"$OUTDIR/counts.floor" || die "floor did not run"
[[ -s $OUTDIR/counts.floor ]] || die "floor counted nothing"
counts_ss >"$OUTDIR/counts.ss" || die "ss -tan did not run"
compare "ss -tan" "$OUTDIR/counts.ss" "$OUTDIR/counts.floor"
if [[ $SKIP_SM == 0 ]]; then
	# sockmedic runs: exit 0-2 (ok / warning / critical) is a run; 3 and above is not
	sm() { # sm OUTFILE [ns] ARGS...
		local out=$1 rc=0; shift
		if [[ $1 == ns ]]; then shift; ip netns exec "$NS" "$SM" "$@" >"$out" || rc=$?
		else "$SM" "$@" >"$out" || rc=$?; fi
		((rc <= 2)) || die "sockmedic $* exited $rc"
	}
	check_json() { # check_json NAME JSONFILE COUNTSFILE
		jq -e '.schema == "sockmedic.report/v1"' "$2" >/dev/null || die "$1: not a sockmedic.report/v1 JSON"
		counts_json <"$2" >"$3" || die "$1: no netns[].states"
	}
	sm "$OUTDIR/sockets.json" sockets --json --netns "$NS"
	check_json "sockmedic sockets --json" "$OUTDIR/sockets.json" "$OUTDIR/counts.sockets"
	compare "sockmedic sockets --netns $NS" "$OUTDIR/counts.sockets" "$OUTDIR/counts.floor"
	sm "$OUTDIR/sockets-self.json" ns sockets --json --netns self
	check_json "sockmedic sockets --json --netns self" "$OUTDIR/sockets-self.json" "$OUTDIR/counts.sockets-self"
	compare "sockmedic sockets --netns self" "$OUTDIR/counts.sockets-self" "$OUTDIR/counts.floor"
	sm "$OUTDIR/stat.json" stat --no-procs --json --netns "$NS"
	check_json "sockmedic stat --json" "$OUTDIR/stat.json" "$OUTDIR/counts.stat"
	if [[ -s $OUTDIR/counts.stat ]]; then
		compare "sockmedic stat --netns $NS" "$OUTDIR/counts.stat" "$OUTDIR/counts.floor"
	else
		log "sockmedic stat --json has no per-state counts for $NS: not compared"
	fi
	sm "$OUTDIR/stat.txt" stat --no-procs --netns "$NS"
	sm "$OUTDIR/stat-procs.json" stat --json --netns "$NS"
	check_json "sockmedic stat --json (with the process scan)" "$OUTDIR/stat-procs.json" "$OUTDIR/counts.stat-procs"
	compare "sockmedic stat --netns $NS (with the process scan)" "$OUTDIR/counts.stat-procs" "$OUTDIR/counts.floor"
	sm "$OUTDIR/check.json" check --once --json --netns "$NS"
	check_json "sockmedic check --once --json" "$OUTDIR/check.json" "$OUTDIR/counts.check"
	compare "sockmedic check --netns $NS" "$OUTDIR/counts.check" "$OUTDIR/counts.floor"
	jq -e '.findings | type == "array"' "$OUTDIR/check.json" >/dev/null || die "sockmedic check --json: no findings array"
fi

# Attribution: which process holds which socket. The holders are every process in the
# namespace (the parent holds no socket; each child its listener and its connections'
# both ends). The bare fd loop counts socket fds per process; sockmedic procs must give
# each holder the same number of socket fds, and the holders' ESTABLISHED must add up
# to the namespace's ESTABLISHED.
ip netns pids "$NS" | sort -n >"$OUTDIR/holder.pids"
"$FDLOOP" >"$OUTDIR/fdloop.txt" || die "fdloop did not run"
awk 'NR == FNR { h[$1] = 1; next } ($1 in h) { print $1, $3 }' "$OUTDIR/holder.pids" "$OUTDIR/fdloop.txt" |
	sort -n >"$OUTDIR/attr.fdloop"
FDLOOP_HOLDER_SOCKS=$(awk '{ s += $2 } END { print s + 0 }' "$OUTDIR/attr.fdloop")
FDLOOP_HOLDERS=$(wc -l <"$OUTDIR/attr.fdloop")
FDLOOP_TOTAL=$(awk '$1 == "TOTAL" { print $2 " processes, " $3 " fds, " $4 " socket fds" }' "$OUTDIR/fdloop.txt")
((FDLOOP_HOLDERS == PROCS && FDLOOP_HOLDER_SOCKS == SOCKETS + PROCS)) || {
	log "ATTRIBUTION: fdloop found $FDLOOP_HOLDER_SOCKS socket fds in $FDLOOP_HOLDERS holders, expected $((SOCKETS + PROCS)) in $PROCS"
	CHECK_FAIL=1
}
log "fdloop: holders hold $FDLOOP_HOLDER_SOCKS socket fds in $FDLOOP_HOLDERS processes; host-wide: $FDLOOP_TOTAL"
ATTR_NOTE=
if [[ $SKIP_SM == 0 ]]; then
	# --all: every process, not the first --top (the timed run prints the top 10; the
	# cut comes after the scan and the join)
	sm "$OUTDIR/procs.json" procs --json --all --netns "$NS"
	jq -e '.schema == "sockmedic.report/v1" and (.processes | type == "array")' "$OUTDIR/procs.json" >/dev/null ||
		die "sockmedic procs --json: not a sockmedic.report/v1 JSON with processes"
	pids_json=$(jq -s -c . "$OUTDIR/holder.pids")
	jq -r --argjson pids "$pids_json" '
		.processes[] | select(.pid as $p | $pids | index($p)) | select((.socket_fds // 0) > 0)
		| "\(.pid) \(.socket_fds) \(.states.ESTABLISHED // 0)"' "$OUTDIR/procs.json" | sort -n >"$OUTDIR/attr.procs"
	est_floor=$(awk '$1 == "ESTABLISHED" { print $2 }' "$OUTDIR/counts.floor")
	est_procs=$(awk '{ s += $3 } END { print s + 0 }' "$OUTDIR/attr.procs")
	if [[ $est_procs == "$est_floor" ]]; then
		log "attribution: the holders' ESTABLISHED in sockmedic procs add up to $est_procs = floor"
	else
		log "ATTRIBUTION DIFFERS: the holders' ESTABLISHED in sockmedic procs add up to $est_procs, the floor counts $est_floor"
		CHECK_FAIL=1
	fi
	if diff -u "$OUTDIR/attr.fdloop" <(awk '{ print $1, $2 }' "$OUTDIR/attr.procs") >"$OUTDIR/diff.txt"; then
		log "attribution: socket fds of each of the $FDLOOP_HOLDERS holders: sockmedic procs = fdloop"
	else
		log "ATTRIBUTION DIFFERS: socket fds per holder (pid count), fdloop vs sockmedic procs:"
		head -n 40 "$OUTDIR/diff.txt" >&2
		CHECK_FAIL=1
	fi
	ATTR_NOTE=" = sockmedic \`procs --json --all\`, per holder; the holders' ESTABLISHED in \`procs\` add up to $est_procs"
fi

# ---------------------------------------------------------------- timing
# Each entry: id | where (ns = inside the namespace, host) | shell (0 = -N) | label | command
TOP10="ss -ant | awk '\$1==\"ESTAB\"{print \$4}' | sort | uniq -c | sort -rn | head"
BENCHES=()
SEP=$'\x1f'
add() { BENCHES+=("$1$SEP$2$SEP$3$SEP$4$SEP$5"); }
add floor ns 0 "floor: sock_diag dump + count (C)" "$FLOOR"
if [[ $SKIP_SM == 0 ]]; then
	add sockets host 0 "sockmedic sockets --json --netns $NS" "$SM sockets --json --netns $NS"
	add sockets_self ns 0 "ip netns exec $NS sockmedic sockets --json --netns self" "$SM sockets --json --netns self"
	add stat host 0 "sockmedic stat --no-procs --netns $NS" "$SM stat --no-procs --netns $NS"
fi
add ss_s ns 0 "ss -s" "ss -s"
add ss_tan ns 0 "ss -tan (to /dev/null)" "ss -tan"
add ss_awk ns 1 "ss -tan | awk (count per state)" "ss -tan | awk 'NR>1{c[\$1]++} END{for(s in c) print s, c[s]}'"
add top10 ns 1 "$TOP10" "$TOP10"
add floor_noestab ns 0 "floor, all states but ESTABLISHED (0xffc)" "$FLOOR 0xffc"
add floor_v6 ns 0 "floor, IPv6 dump only (no IPv6 sockets)" "$FLOOR 0xffe 6"
add floor_bound ns 0 "floor, BOUND-INACTIVE only (0x2000: walks the bind hash)" "$FLOOR 0x2000"
add floor_hostns host 0 "floor run in the host netns (not in $NS)" "$FLOOR"
# Attribution (a table of its own in the report)
add fdloop host 0 "fdloop: readlink every /proc/PID/fd entry (C)" "$FDLOOP"
if [[ $SKIP_SM == 0 ]]; then
	add procs host 0 "sockmedic procs --json --netns $NS" "$SM procs --json --netns $NS"
	add stat_procs host 0 "sockmedic stat --netns $NS (with the process scan)" "$SM stat --netns $NS"
	add check host 0 "sockmedic check --once --netns $NS (diagnosis: dump, process scan, kernel log, rules)" "$SM check --once --json --netns $NS"
fi
is_attr() { [[ $1 == fdloop || $1 == procs* || $1 == stat_procs || $1 == check ]]; }
findings_ok() { [[ $1 == sockets* || $1 == stat* || $1 == procs* || $1 == check ]]; } # exit 1-2 = findings

# How idle the machine is (other people's work skews wall times): /proc/stat over 3 s.
cpu_idle_pct() {
	local a b
	a=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	sleep 3
	b=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," "); t=y[1]-x[1]; printf "%d", (t > 0 ? 100*(y[2]-x[2])/t : 100)}'
}
IDLE0=$(cpu_idle_pct)
log "CPU idle before timing: $IDLE0%"
# Interleaved rounds: round 0 is the warm-up, then every command once per round, so a
# burst of someone else's work on the machine hits all commands alike, not one.
for ((r = 0; r <= RUNS; r++)); do
	holders_alive
	log "round $r of $RUNS$([[ $r == 0 ]] && echo " (warm-up, not counted)")"
	for b in "${BENCHES[@]}"; do
		IFS=$SEP read -r id where shell label cmd <<<"$b"
		hf=(hyperfine --runs 1 --style none --export-json "$JSONDIR/$id.r$r.json" --command-name "$label")
		[[ $shell == 0 ]] && hf+=(-N)
		findings_ok "$id" && hf+=(-i) # exit 1-2 = findings; checked above
		[[ $where == ns ]] && hf=(ip netns exec "$NS" "${hf[@]}")
		"${hf[@]}" "$cmd" >&2 || die "hyperfine: $label"
		[[ $r == 0 ]] && rm -f "$JSONDIR/$id.r0.json"
		((r == 0)) || log "  $(jq -r '.results[0].times[0] * 1000 | floor' "$JSONDIR/$id.r$r.json") ms  $label"
	done
done
# Per command: median, min, max of wall time; median of user+sys CPU time.
for b in "${BENCHES[@]}"; do
	IFS=$SEP read -r id where shell label cmd <<<"$b"
	summarize_rounds "$JSONDIR" "$id" "$label"
done
# Peak RSS (KiB) of each, one more run; for a pipeline: the largest process in it.
for b in "${BENCHES[@]}"; do
	IFS=$SEP read -r id where shell label cmd <<<"$b"
	rss=(/usr/bin/time -f %M -o "$JSONDIR/$id.rss")
	[[ $where == ns ]] && rss=(ip netns exec "$NS" "${rss[@]}")
	"${rss[@]}" sh -c "$cmd" >/dev/null || findings_ok "$id" || die "time: $label"
done

holders_alive
IDLE1=$(cpu_idle_pct)

# The slow attribution tools, once each (minutes at a million sockets), inside the
# namespace, killed after SLOW_TIMEOUT seconds: wall and CPU time and peak RSS from
# GNU time; "timeout" in $id.once if killed.
SLOW=()
if ((SLOW_TIMEOUT > 0)); then
	SLOW+=("lsof${SEP}lsof -nP -iTCP | wc -l${SEP}lsof -nP -iTCP | wc -l")
	SLOW+=("ss_tanp${SEP}ss -tanp (to a file)${SEP}ss -tanp >'$OUTDIR/ss-tanp.txt'")
fi
for b in "${SLOW[@]}"; do
	IFS=$SEP read -r id label cmd <<<"$b"
	log "once: $label (killed after ${SLOW_TIMEOUT}s)"
	rc=0 t_slow=$SECONDS
	ip netns exec "$NS" /usr/bin/time -f '%e %U %S %M' -o "$JSONDIR/$id.time" \
		timeout -k 10 "$SLOW_TIMEOUT" sh -c "$cmd" >"$OUTDIR/$id.out" 2>"$OUTDIR/$id.err" || rc=$?
	holders_alive
	if ((rc == 124 || (rc == 137 && SECONDS - t_slow >= SLOW_TIMEOUT))); then
		echo timeout >"$JSONDIR/$id.once"
		log "  > ${SLOW_TIMEOUT} s (killed)  $label"
	elif ((rc != 0)); then
		die "$label exited $rc: $(tail -n 3 "$OUTDIR/$id.err")"
	else
		tail -n 1 "$JSONDIR/$id.time" >"$JSONDIR/$id.once"
		log "  $(awk '{ print $1 }' "$JSONDIR/$id.once") s  $label"
	fi
done
SSP_ATTRIBUTED=
if [[ -s $OUTDIR/ss-tanp.txt && $(cat "$JSONDIR/ss_tanp.once") != timeout ]]; then
	SSP_ATTRIBUTED=$(awk 'NR > 1 && /users:\(\(/ { n++ } END { print n + 0 }' "$OUTDIR/ss-tanp.txt")
	rm -f "$OUTDIR/ss-tanp.txt" # ~100 MB at a million sockets
fi

# ---------------------------------------------------------------- report
med() { jq -r '.median' "$JSONDIR/$1.json"; }
fmt_s() { awk -v t="$1" 'BEGIN{ if (t >= 1) printf "%.3f s", t; else printf "%.1f ms", t*1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
FLOOR_MED=$(med floor)
AWK_MED=$(med ss_awk)
CPU=$(lscpu | awk -F: '/^Model name/{gsub(/^ +/,"",$2); print $2; exit}')
MEM=$(awk '/^MemTotal:/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
	echo "Sockets: **$SOCKETS** ESTABLISHED TCP sockets ($CONNS loopback connections, both ends held, in $PROCS processes; plus $PROCS listeners) in network namespace \`$NS\`; TCP inuse $inuse. Setup took ${SETUP_S} s."
	echo
	echo "Machine: $(nproc) cores, $CPU, $MEM, Linux $(uname -r); $(ss -V 2>&1 | head -1); $(hyperfine --version); CPU idle before/after timing: $IDLE0% / $IDLE1%. Commit $REV, $(date -u +%Y-%m-%dT%H:%MZ). $RUNS interleaved rounds after 1 warm-up round (hyperfine, 1 run per command per round)."
	echo
	if ((IDLE0 < 80 || IDLE1 < 80)); then
		echo "**The machine was busy** (CPU idle $IDLE0% before timing, $IDLE1% after): wall times are inflated, pipelines most; CPU times are steadier."
		echo
	fi
	echo "| command | median | min | max | CPU (user+sys, median) | × floor | \`ss \| awk\` ÷ this | peak RSS |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for b in "${BENCHES[@]}"; do
		IFS=$SEP read -r id where shell label cmd <<<"$b"
		is_attr "$id" && continue
		read -r m lo hi cpu < <(jq -r '"\(.median) \(.min) \(.max) \(.cpu)"' "$JSONDIR/$id.json")
		rss_kb=$(tail -n 1 "$JSONDIR/$id.rss")
		printf '| `%s` | %s | %s | %s | %s | %s | %s | %s |\n' "${label//|/\\|}" "$(fmt_s "$m")" "$(fmt_s "$lo")" "$(fmt_s "$hi")" "$(fmt_s "$cpu")" \
			"$(ratio "$m" "$FLOOR_MED")" "$(ratio "$AWK_MED" "$m")" "$(awk -v k="$rss_kb" 'BEGIN{printf "%.1f MB", k/1024}')"
	done
	echo
	if [[ $CHECK_FAIL == 0 ]]; then
		echo "Per-state counts agree (floor = \`ss -tan\`$([[ $SKIP_SM == 0 ]] && echo " = sockmedic sockets, sockets --netns self, stat")): $(tr '\n' ' ' <"$OUTDIR/counts.floor" | sed 's/ $//')."
	else
		echo "**Per-state counts differ** (floor: $(tr '\n' ' ' <"$OUTDIR/counts.floor" | sed 's/ $//')); see the log."
	fi
	if [[ $SKIP_SM == 0 ]]; then
		S=$(med sockets) ST=$(med stat) RSS=$(tail -n 1 "$JSONDIR/sockets.rss")
		verdict() { awk -v c="$1" 'BEGIN{ print (c ? "met" : "**missed**") }'; }
		echo
		echo "Targets ($SOCKETS sockets$( ((SOCKETS < 1000000)) && echo "; the targets are set for a million, and at this size other sockets on the host, in any namespace, weigh on every dump")):"
		echo "- \`sockets\` within 1.3× the floor: $(ratio "$S" "$FLOOR_MED")× — $(verdict "$(awk -v s="$S" -v f="$FLOOR_MED" 'BEGIN{print (s <= 1.3*f)}')")"
		echo "- \`sockets\` at least 3× faster than \`ss | awk\`: $(ratio "$AWK_MED" "$S")× — $(verdict "$(awk -v s="$S" -v a="$AWK_MED" 'BEGIN{print (a >= 3*s)}')")"
		echo "- \`sockets\` peak RSS under 50 MB: $(awk -v k="$RSS" 'BEGIN{printf "%.1f MB", k/1024}') — $(verdict "$(awk -v k="$RSS" 'BEGIN{print (k*1024 < 50e6)}')")"
		echo "- \`stat\` under a quarter of the floor: $(ratio "$ST" "$FLOOR_MED")× — $(verdict "$(awk -v s="$ST" -v f="$FLOOR_MED" 'BEGIN{print (s < 0.25*f)}')")"
	fi

	# ------------------------------------------------------------ attribution
	LOOP_MED=$(med fdloop)
	SSP=
	[[ -s $JSONDIR/ss_tanp.once ]] && SSP=$(awk '{ print $1 }' "$JSONDIR/ss_tanp.once")
	SSP_T=$SSP SSP_GT=
	[[ $SSP == timeout ]] && SSP_T=$SLOW_TIMEOUT SSP_GT="> "
	echo
	echo "### Attribution: which process holds each socket"
	echo
	echo "$PROCS holder processes hold the $SOCKETS sockets (plus a listener each); host-wide, the fd loop read $FDLOOP_TOTAL. $( ((SLOW_TIMEOUT > 0)) && echo "\`ss -tanp\` and \`lsof\` ran once each (not in the rounds), inside \`$NS\`, to be killed after $SLOW_TIMEOUT s." || echo "\`ss -tanp\` and \`lsof\` were not run (--slow-timeout 0).")"
	echo
	echo "| command | median | min | max | CPU (user+sys, median) | × fd loop | \`ss -tanp\` ÷ this | peak RSS |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for b in "${BENCHES[@]}"; do
		IFS=$SEP read -r id where shell label cmd <<<"$b"
		is_attr "$id" || continue
		read -r m lo hi cpu < <(jq -r '"\(.median) \(.min) \(.max) \(.cpu)"' "$JSONDIR/$id.json")
		rss_kb=$(tail -n 1 "$JSONDIR/$id.rss")
		printf '| `%s` | %s | %s | %s | %s | %s | %s | %s |\n' "${label//|/\\|}" "$(fmt_s "$m")" "$(fmt_s "$lo")" "$(fmt_s "$hi")" "$(fmt_s "$cpu")" \
			"$(ratio "$m" "$LOOP_MED")" "$( [[ -n $SSP_T ]] && echo "$SSP_GT$(ratio "$SSP_T" "$m")" || echo -)" "$(awk -v k="$rss_kb" 'BEGIN{printf "%.1f MB", k/1024}')"
	done
	for b in "${SLOW[@]}"; do
		IFS=$SEP read -r id label cmd <<<"$b"
		once=$(cat "$JSONDIR/$id.once")
		if [[ $once == timeout ]]; then
			printf '| `%s` (once) | > %s | | | | > %s | | killed |\n' "${label//|/\\|}" "$(fmt_s "$SLOW_TIMEOUT")" "$(ratio "$SLOW_TIMEOUT" "$LOOP_MED")"
		else
			read -r t u sy rss_kb <<<"$once"
			printf '| `%s` (once) | %s | | | %s | %s | %s | %s |\n' "${label//|/\\|}" "$(fmt_s "$t")" "$(fmt_s "$(awk -v u="$u" -v s="$sy" 'BEGIN{print u+s}')")" \
				"$(ratio "$t" "$LOOP_MED")" "$( [[ -n $SSP_T ]] && echo "$SSP_GT$(ratio "$SSP_T" "$t")" || echo -)" "$(awk -v k="$rss_kb" 'BEGIN{printf "%.1f MB", k/1024}')"
		fi
	done
	echo
	echo "Socket fds per holder: fdloop$ATTR_NOTE (ESTABLISHED: $(awk '$1 == "ESTABLISHED" { print $2 }' "$OUTDIR/counts.floor"))$( [[ -n $SSP_ATTRIBUTED ]] && echo "; \`ss -tanp\` names a process for $SSP_ATTRIBUTED sockets")$( [[ -s $JSONDIR/lsof.once && $(cat "$JSONDIR/lsof.once") != timeout ]] && echo "; \`lsof -nP -iTCP\` printed $(tr -d ' ' <"$OUTDIR/lsof.out") lines")."
	if [[ $SKIP_SM == 0 ]]; then
		P=$(med procs)
		echo
		echo "Targets ($SOCKETS sockets$( ((SOCKETS < 1000000)) && echo "; the targets are set for a million, and at this size the other processes' fds on the host weigh on every scan: the fd loop read $FDLOOP_TOTAL")):"
		if [[ -n $SSP_T ]]; then
			echo "- \`procs\` at least 20× faster than \`ss -tanp\`: $SSP_GT$(ratio "$SSP_T" "$P")× — $(verdict "$(awk -v p="$P" -v s="$SSP_T" 'BEGIN{print (s >= 20*p)}')")"
		else
			echo "- \`procs\` at least 20× faster than \`ss -tanp\`: not measured (--slow-timeout 0)"
		fi
		echo "- \`procs\` within 2× the fd loop: $(ratio "$P" "$LOOP_MED")× — $(verdict "$(awk -v p="$P" -v l="$LOOP_MED" 'BEGIN{print (p <= 2*l)}')")"
		echo "- \`procs\` phases (the check run with --all): whole run $(jq -r '.source.duration_ms | floor' "$OUTDIR/procs.json") ms, dumps $(jq -r '[.netns[].dump.duration_ms // 0] | add | floor' "$OUTDIR/procs.json") ms"
	fi
} >"$OUT"
log "results: $OUT"
cat "$OUT"

if [[ $CHECK_FAIL != 0 ]]; then
	die "counts differ (see above)"
fi
if [[ $KEEP == 1 ]]; then
	log "--keep: namespace $NS stays up; Ctrl-C to tear down"
	while kill -0 "$HOLDER_PID" 2>/dev/null; do sleep 1; done
fi
log "done"
