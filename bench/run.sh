#!/usr/bin/env bash
# bench/run.sh: the speed benchmark of sockmedic (see bench/README.md).
#
#   bench/run.sh [--sockets N] [--runs R] [--out FILE] [--small] [--no-sockmedic] [--keep]
#
# Builds a network namespace holding N ESTABLISHED TCP sockets (default 1,000,000),
# times sockmedic next to ss, ss | awk and a minimal sock_diag loop (the kernel's
# floor) with hyperfine, measures peak RSS with GNU time, checks that every tool
# counts the same sockets per state, and writes a Markdown table.
#
# Exit status: non-zero only if something did not run, or the per-state counts of
# sockmedic, ss and the floor differ. Timings are reported, never asserted.
set -euo pipefail

SOCKETS= RUNS= OUT= SMALL=0 SKIP_SM=0 KEEP=0
usage() {
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
	cat <<'EOF'
Options:
  --sockets N      sockets to hold (default 1000000; --small: 20000); N/2 connections
  --runs R         timed rounds, each running every command once (default 5; --small: 2), after 1 warm-up round
  --out FILE       Markdown results (default bench/out/results.md)
  --small          the CI version: 20k sockets, 2 runs, a couple of minutes
  --no-sockmedic   time only the reference commands (before the binary exists)
  --keep           leave the namespace and holders up at the end (Ctrl-C to tear down)
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
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
if [[ $SMALL == 1 ]]; then
	SOCKETS=${SOCKETS:-20000} RUNS=${RUNS:-2}
fi
SOCKETS=${SOCKETS:-1000000} RUNS=${RUNS:-5}
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
export LC_ALL=C # the same sort order and number format on every machine

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[[ $EUID -eq 0 ]] || die "needs root (network namespaces, sock_diag of every socket)"

# ---------------------------------------------------------------- tools
APT_UPDATED=0
apt_install() {
	command -v apt-get >/dev/null || die "missing $* and no apt-get to install it"
	if [[ $APT_UPDATED == 0 ]]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update"
		APT_UPDATED=1
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 ||
		die "apt-get install $*"
}
need() { # need COMMAND-OR-PATH PACKAGE
	if [[ $1 == /* ]]; then [[ -x $1 ]] && return; else command -v "$1" >/dev/null && return; fi
	apt_install "$2"
}
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

# ---------------------------------------------------------------- cleanup
HOLDER_PID=
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NS"; }
teardown_ns() { # kill whatever still lives in the namespace, then delete it
	local pids i
	ns_exists || return 0
	for i in 1 2 3 4 5; do
		pids=$(ip netns pids "$NS" 2>/dev/null || true)
		[[ -z $pids ]] && break
		kill -KILL $pids 2>/dev/null || true
		sleep 0.5
	done
	ip netns del "$NS" 2>/dev/null || true
}
cleanup() {
	local rc=$? i t_down=$SECONDS
	set +e
	trap - EXIT INT TERM HUP
	if [[ -n $HOLDER_PID ]] && kill -0 "$HOLDER_PID" 2>/dev/null; then
		log "tearing down: stopping the holders"
		kill -TERM "$HOLDER_PID" 2>/dev/null
		for i in $(seq 1 300); do kill -0 "$HOLDER_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$HOLDER_PID" 2>/dev/null
		wait "$HOLDER_PID" 2>/dev/null
	fi
	teardown_ns
	log "teardown done after $((SECONDS - t_down))s"
	if ns_exists; then
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
rm -f "$JSONDIR"/*.json "$JSONDIR"/*.rss "$OUT"
if [[ $SKIP_SM == 0 ]]; then
	log "cargo build --release (workspace)"
	(cd "$ROOT" && cargo build --release --quiet) >&2 || die "cargo build --release"
	[[ -x $SM ]] || die "no $SM after the build"
fi
log "gcc bench/holder.c bench/floor.c"
gcc -O2 -Wall -o "$HOLDER" "$ROOT/bench/holder.c" || die "gcc holder.c"
gcc -O2 -Wall -o "$FLOOR" "$ROOT/bench/floor.c" || die "gcc floor.c"

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
if ns_exists; then
	log "removing a stale namespace $NS (a previous run that did not finish)"
	teardown_ns
	ns_exists && die "namespace $NS exists and cannot be removed"
fi
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
	log "round $r of $RUNS$([[ $r == 0 ]] && echo " (warm-up, not counted)")"
	for b in "${BENCHES[@]}"; do
		IFS=$SEP read -r id where shell label cmd <<<"$b"
		hf=(hyperfine --runs 1 --style none --export-json "$JSONDIR/$id.r$r.json" --command-name "$label")
		[[ $shell == 0 ]] && hf+=(-N)
		[[ $id == sockets* || $id == stat* ]] && hf+=(-i) # exit 1-2 = findings; checked above
		[[ $where == ns ]] && hf=(ip netns exec "$NS" "${hf[@]}")
		"${hf[@]}" "$cmd" >&2 || die "hyperfine: $label"
		[[ $r == 0 ]] && rm -f "$JSONDIR/$id.r0.json"
		((r == 0)) || log "  $(jq -r '.results[0].times[0] * 1000 | floor' "$JSONDIR/$id.r$r.json") ms  $label"
	done
done
# Per command: median, min, max of wall time; median of user+sys CPU time.
for b in "${BENCHES[@]}"; do
	IFS=$SEP read -r id where shell label cmd <<<"$b"
	jq -s --arg name "$label" '
		def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		[.[].results[0]] as $r
		| { command: $name, runs: ($r | length), times: [$r[].times[0]],
		    median: ([$r[].times[0]] | median), min: ([$r[].times[0]] | min), max: ([$r[].times[0]] | max),
		    cpu: ([$r[] | .user + .system] | median) }' "$JSONDIR/$id".r*.json >"$JSONDIR/$id.json" ||
		die "summarising $id"
done
# Peak RSS (KiB) of each, one more run; for a pipeline: the largest process in it.
for b in "${BENCHES[@]}"; do
	IFS=$SEP read -r id where shell label cmd <<<"$b"
	rss=(/usr/bin/time -f %M -o "$JSONDIR/$id.rss")
	[[ $where == ns ]] && rss=(ip netns exec "$NS" "${rss[@]}")
	"${rss[@]}" sh -c "$cmd" >/dev/null || [[ $id == sockets* || $id == stat* ]] || die "time: $label"
done

IDLE1=$(cpu_idle_pct)

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
} >"$OUT"
log "results: $OUT"
cat "$OUT"

if [[ $CHECK_FAIL != 0 ]]; then
	die "per-state counts differ (see above)"
fi
if [[ $KEEP == 1 ]]; then
	log "--keep: namespace $NS stays up; Ctrl-C to tear down"
	while kill -0 "$HOLDER_PID" 2>/dev/null; do sleep 1; done
fi
log "done"
