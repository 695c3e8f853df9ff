#!/usr/bin/env bash
# bench/pcap.sh: the speed of `sockmedic pcap` on a large real capture (see bench/README.md).
#
#   bench/pcap.sh [--conns N] [--runs R] [--slow-runs S] [--dir DIR] [--regen] [--out FILE]
#                 [--profile] [--small]
#
# Captures real traffic with tcpdump on a veth pair between two network namespaces the
# script creates (MTU 1500, offloads off, so frames are what a NIC would carry):
# bench/pcapgen.c makes N short request/response connections (default 60,000: ~1.8M
# packets, ~1.2 GB) with mixed sizes, closed by either side, 3% reset, 1% refused,
# while nftables in the server namespace drops the pure ACKs and FINs two servers send,
# 4 s in every 12 s, so their closes stall and FINs are retransmitted (incident 2).
# Derives from it a gzip copy, a pcapng copy and a snaplen-128 copy. The files are kept
# in DIR (default /var/tmp/sockmedic-bench/pcap) and reused; --regen makes them again.
#
# Checks that sockmedic counts the packets, SYNs, FINs, RSTs and FIN retransmissions
# tshark counts, the same in every copy, then times with hyperfine, page cache warm,
# side by side: sockmedic pcap (text, --json, gzip, pcapng, snaplen 128, stdin), tshark
# doing the equivalent (conv,tcp; a FIN filter pass; both in one pass; from zcat),
# tcpdump's FIN filter and capinfos; peak RSS with GNU time (and sockmedic's anonymous
# memory, sampled from /proc, since its RSS includes the mapped file). Writes Markdown
# (default bench/out/pcap.md) with the ratios and the two targets: at least 20x faster
# than tshark, at least 1 GB/s.
#
# Exit status: non-zero only if something did not run or the counts differ. Timings
# are reported, never asserted.
set -euo pipefail

CONNS= RUNS= SLOW_RUNS= DIR= REGEN=0 OUT= PROFILE=0 SMALL=0
usage() {
	sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
	cat <<'EOF'
Options:
  --conns N      connections to capture (default 60000; --small: 1000, about 30k packets)
  --runs R       timed rounds of the fast commands, after 1 warm-up round (default 10; --small: 1)
  --slow-runs S  of those rounds, how many also run tshark (default 3; --small: 1)
  --dir DIR      where the captures are kept (default /var/tmp/sockmedic-bench/pcap;
                 --small uses DIR/small and always makes it again)
  --regen        make the captures again even if DIR has them
  --out FILE     Markdown results (default bench/out/pcap.md; --small: bench/out/pcap-small.md)
  --profile      also sample `sockmedic pcap --json` with perf (bench/out/pcap-profile.txt)
  --small        the CI version: a fresh ~30k-packet capture, one run each, well under a minute
EOF
}
while [[ $# -gt 0 ]]; do
	case $1 in
	--conns) CONNS=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--slow-runs) SLOW_RUNS=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--regen) REGEN=1; shift ;;
	--out) OUT=$2; shift 2 ;;
	--profile) PROFILE=1; shift ;;
	--small) SMALL=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "pcap.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTDIR=$ROOT/bench/out
JSONDIR=$OUTDIR/pcap-json
DIR=${DIR:-/var/tmp/sockmedic-bench/pcap}
if [[ $SMALL == 1 ]]; then
	CONNS=${CONNS:-1000} RUNS=${RUNS:-1} SLOW_RUNS=${SLOW_RUNS:-1} DIR=$DIR/small REGEN=1
	OUT=${OUT:-$OUTDIR/pcap-small.md}
	STALL_ON=0.5 STALL_OFF=0.5 TAIL=2
else
	STALL_ON=4 STALL_OFF=8 TAIL=6
fi
CONNS=${CONNS:-60000} RUNS=${RUNS:-10} SLOW_RUNS=${SLOW_RUNS:-3} OUT=${OUT:-$OUTDIR/pcap.md}
[[ $CONNS =~ ^[0-9]+$ && $CONNS -ge 100 ]] || { echo "pcap.sh: --conns must be a number >= 100" >&2; exit 2; }
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || { echo "pcap.sh: --runs must be a number >= 1" >&2; exit 2; }
[[ $SLOW_RUNS =~ ^[0-9]+$ && $SLOW_RUNS -ge 1 && $SLOW_RUNS -le $RUNS ]] ||
	{ echo "pcap.sh: --slow-runs must be a number from 1 to --runs" >&2; exit 2; }
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SM=$TARGET/release/sockmedic
GEN=$OUTDIR/pcapgen
export LC_ALL=C

BENCH_NAME=pcap
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

[[ $EUID -eq 0 ]] || die "needs root (network namespaces, tcpdump, nftables)"

# ---------------------------------------------------------------- tools
need ip iproute2
need nft nftables
need ethtool ethtool
need tcpdump tcpdump
need tshark tshark
need capinfos wireshark-common
need editcap wireshark-common
need hyperfine hyperfine
need /usr/bin/time time
need jq jq
need gcc gcc
need python3 python3
need gzip gzip
need fincore util-linux
[[ $PROFILE == 0 ]] || need perf linux-perf

# ---------------------------------------------------------------- cleanup
NSC=smpcap-c-$$ NSS=smpcap-s-$$ # client (the captured host) and server namespaces
PIDS=()                         # background processes of this run
cleanup() {
	local rc=$? p
	set +e
	trap - EXIT INT TERM HUP
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	teardown_ns "$NSC"
	teardown_ns "$NSS"
	rm -f "$DIR"/*.tmp.$$ 2>/dev/null
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# Namespaces of runs that were killed (their PID is gone): a live run's are left alone.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^smpcap-[cs]-[0-9]+$' || true); do
	kill -0 "${ns##*-}" 2>/dev/null || { log "removing stale namespace $ns"; teardown_ns "$ns"; }
done

# ---------------------------------------------------------------- build
mkdir -p "$OUTDIR" "$JSONDIR" "$DIR"
rm -f "$JSONDIR"/*
log "cargo build --release -p sockmedic"
(cd "$ROOT" && cargo build --release -q -p sockmedic) >&2 || die "cargo build --release -p sockmedic"
[[ -x $SM ]] || die "no $SM after the build"
log "gcc bench/pcapgen.c"
gcc -O2 -Wall -pthread -o "$GEN" "$ROOT/bench/pcapgen.c" || die "gcc pcapgen.c"

# ---------------------------------------------------------------- the capture
F=$DIR/capture-$CONNS.pcap
META=$F.meta
SERVERS4=(10.77.1.1 10.77.1.2 10.77.1.3 10.77.1.4 10.77.1.5 10.77.1.6 10.77.1.7 10.77.1.8 10.77.1.9 10.77.1.10)
SERVERS6=(fd77::1:1 fd77::1:2)
STALLED=(10.77.1.9 10.77.1.10) # their ACKs and FINs are dropped STALL_ON s in every STALL_ON+STALL_OFF s
BASE_PORT=8000 NPORTS=8
RATE=2000 # connections a second: ~60k packets a second, which tcpdump keeps up with

generate() { # generate OUT: the real capture (takes about a minute for 60,000 connections)
	local out=$1 tmp=$1.tmp.$$ tlog=$OUTDIR/pcap-tcpdump.log t0 dev=eth0 i a
	log "generating $out: $CONNS connections between namespaces $NSC and $NSS"
	ip netns add "$NSC"
	ip netns add "$NSS"
	ip link add "pcc$$" netns "$NSC" type veth peer name "pcs$$" netns "$NSS"
	ip -n "$NSC" link set "pcc$$" name "$dev"
	ip -n "$NSS" link set "pcs$$" name "$dev"
	for ns in "$NSC" "$NSS"; do
		ip -n "$ns" link set lo up
		ip -n "$ns" link set "$dev" mtu 1500 up
		# No TSO/GSO/GRO: the capture sees MTU-sized frames, as on a real NIC.
		ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 ||
			die "ethtool -K $dev tso off gso off gro off in $ns"
	done
	ip -n "$NSC" addr add 10.77.0.1/16 dev "$dev"
	ip -n "$NSC" addr add fd77::1/64 dev "$dev" nodad
	for a in "${SERVERS4[@]}"; do ip -n "$NSS" addr add "$a/16" dev "$dev"; done
	for a in "${SERVERS6[@]}"; do ip -n "$NSS" addr add "$a/64" dev "$dev" nodad; done
	ip netns exec "$NSC" sysctl -qw net.ipv4.ip_local_port_range="10000 60999" >/dev/null
	ip netns exec "$NSS" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096 >/dev/null
	# The stall: what the stalled servers send without payload (pure ACKs, FINs; not
	# SYN-ACKs or RSTs) is dropped while their addresses are in the set.
	ip netns exec "$NSS" nft -f - <<-EOF || die "nft"
		table inet smpcap {
			set stalled { type ipv4_addr; }
			chain out {
				type filter hook output priority 0;
				ip saddr @stalled ip length 52 tcp flags & (syn | rst) == 0 drop
			}
		}
	EOF
	local gen_log=$OUTDIR/pcapgen-server.log
	ip netns exec "$NSS" "$GEN" server -p "$BASE_PORT" -n "$NPORTS" -t 4 >"$gen_log" 2>&1 &
	local server_pid=$!
	PIDS+=("$server_pid")
	for i in $(seq 1 50); do grep -q listening "$gen_log" && break; sleep 0.1; done
	grep -q listening "$gen_log" || die "pcapgen server: $(cat "$gen_log")"

	ip netns exec "$NSC" tcpdump -i "$dev" -n -s 0 -B 262144 -Z root -w "$tmp" 2>"$tlog" &
	local tcpdump_pid=$!
	PIDS+=("$tcpdump_pid")
	for i in $(seq 1 50); do grep -q 'listening on' "$tlog" && break; sleep 0.1; done
	grep -q 'listening on' "$tlog" || die "tcpdump: $(cat "$tlog")"

	( # the stall windows, until killed
		trap 'ip netns exec "$NSS" nft flush set inet smpcap stalled; exit 0' TERM
		while :; do
			ip netns exec "$NSS" nft add element inet smpcap stalled "{ $(IFS=,; echo "${STALLED[*]}") }"
			sleep "$STALL_ON" & wait $!
			ip netns exec "$NSS" nft flush set inet smpcap stalled
			sleep "$STALL_OFF" & wait $!
		done
	) &
	local stall_pid=$!
	PIDS+=("$stall_pid")

	t0=$SECONDS
	# In the background, so that Ctrl-C or a TERM reaches the trap at once.
	ip netns exec "$NSC" "$GEN" client -c "$CONNS" -p "$BASE_PORT" -n "$NPORTS" -t 32 -r "$RATE" -s 1 \
		"${SERVERS4[@]}" "${SERVERS6[@]}" >"$OUTDIR/pcapgen-client.log" 2>&1 &
	local client_pid=$!
	PIDS+=("$client_pid")
	wait "$client_pid" || die "pcapgen client: $(tail -n 5 "$OUTDIR/pcapgen-client.log")"
	local client_s=$((SECONDS - t0))
	kill -TERM "$stall_pid"; wait "$stall_pid" || true
	log "client done in ${client_s}s: $(cat "$OUTDIR/pcapgen-client.log"); ${TAIL}s for the stalled closes to finish"
	sleep "$TAIL"
	kill -INT "$tcpdump_pid"; wait "$tcpdump_pid" || true
	kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
	local captured dropped
	captured=$(awk '/packets captured/ {print $1}' "$tlog")
	dropped=$(awk '/packets dropped by kernel/ {print $1}' "$tlog")
	[[ -n $captured && -n $dropped ]] || die "tcpdump did not report its counts: $(cat "$tlog")"
	((dropped == 0)) || log "WARNING: tcpdump: $dropped packets dropped by kernel (the capture misses them)"
	teardown_ns "$NSC"
	teardown_ns "$NSS"
	PIDS=()
	{
		echo "conns=$CONNS"
		echo "client=$(cat "$OUTDIR/pcapgen-client.log")"
		echo "client_seconds=$client_s"
		echo "captured=$captured"
		echo "dropped=$dropped"
		echo "made=$(date -u +%Y-%m-%dT%H:%MZ)"
		echo "kernel=$(uname -r)"
		echo "tcpdump=$(tcpdump --version 2>&1 | head -1)"
	} >"$META"
	mv "$tmp" "$out"
}

if [[ $REGEN == 1 || ! -s $F || ! -s $META ]]; then
	rm -f "$F" "$F".* "${F%.pcap}".pcapng "${F%.pcap}"-*.pcap*
	generate "$F"
else
	log "reusing $F ($(du -h "$F" | cut -f1); --regen makes it again)"
fi
F_GZ=$F.gz
F_NG=${F%.pcap}.pcapng
F_128=${F%.pcap}-s128.pcap
derive() { # derive OUT COMMAND...: OUT from F by COMMAND (writing to stdout), unless present
	local out=$1; shift
	[[ -s $out ]] && return
	log "making $out"
	"$@" >"$out.tmp.$$" || die "$* for $out"
	mv "$out.tmp.$$" "$out"
}
derive "$F_GZ" gzip -c "$F"
derive "$F_NG" editcap -F pcapng "$F" -
derive "$F_128" editcap -F pcap -s 128 "$F" -

# ---------------------------------------------------------------- correctness
# sockmedic runs: exit 0-2 (ok / warning / critical) is a run; 3 and above is not.
sm_json() { # sm_json OUT ARGS...
	local out=$1 rc=0; shift
	"$SM" pcap "$@" --json >"$out" || rc=$?
	((rc <= 2)) || die "sockmedic pcap $* exited $rc"
}
sm_json "$JSONDIR/report.json" "$F"
sm_json "$JSONDIR/report-gz.json" "$F_GZ"
sm_json "$JSONDIR/report-ng.json" "$F_NG"
sm_json "$JSONDIR/report-128.json" "$F_128"
rc=0; "$SM" pcap - --json <"$F" >"$JSONDIR/report-stdin.json" || rc=$?
((rc <= 2)) || die "sockmedic pcap - (stdin) exited $rc"
KEYS='packets tcp_packets syn_packets fin_packets rst_packets fin_retransmissions connections closes_completed resets'
sm_counts() { jq -r --arg k "$KEYS" '.capture as $c | ($k | split(" "))[] | "\(.) \($c[.])"' "$1"; }
sm_counts "$JSONDIR/report.json" >"$JSONDIR/counts.sm"
CHECK_FAIL=0
for v in gz ng 128 stdin; do
	sm_counts "$JSONDIR/report-$v.json" >"$JSONDIR/counts.sm-$v"
	diff -u "$JSONDIR/counts.sm" "$JSONDIR/counts.sm-$v" >&2 ||
		{ log "COUNTS DIFFER: sockmedic on $v vs the pcap"; CHECK_FAIL=1; }
done
IOSTAT="io,stat,0,COUNT(frame)frame,COUNT(tcp)tcp,COUNT(tcp.flags.syn)tcp.flags.syn==1,COUNT(tcp.flags.fin)tcp.flags.fin==1,COUNT(tcp.flags.reset)tcp.flags.reset==1,COUNT(tcp.flags.fin)tcp.flags.fin==1 && tcp.analysis.retransmission"
log "tshark: the reference counts (one pass: conv,tcp and io,stat)"
tshark -n -r "$F" -q -z conv,tcp -z "$IOSTAT" >"$OUTDIR/pcap-tshark.txt" 2>/dev/null || die "tshark -z conv,tcp -z io,stat"
read -r t_frames t_tcp t_syn t_fin t_rst t_finrx < <(awk -F'|' '/<>/ && NF > 7 { for (i = 3; i <= 8; i++) { gsub(/ /, "", $i); printf "%s ", $i } print "" }' "$OUTDIR/pcap-tshark.txt")
t_conv=$(grep -c '<->' "$OUTDIR/pcap-tshark.txt" || true)
[[ -n $t_finrx ]] || die "no io,stat row in tshark's output (bench/out/pcap-tshark.txt)"
# tcpdump's tcp[] reaches IPv4 only: IPv6's TCP flags are at ip6[53] (no extension headers here).
TD_FIN='tcp[tcpflags] & tcp-fin != 0 or (ip6[6] == 6 and ip6[53] & 1 != 0)'
td_fin=$(tcpdump -n -r "$F" "$TD_FIN" 2>/dev/null | wc -l)
cap_packets=$(capinfos -M -c "$F" | awk -F: '/Number of packets/ { gsub(/ /, "", $2); print $2 }')
{
	echo "packets $t_frames"
	echo "tcp_packets $t_tcp"
	echo "syn_packets $t_syn"
	echo "fin_packets $t_fin"
	echo "rst_packets $t_rst"
	echo "fin_retransmissions $t_finrx"
} >"$JSONDIR/counts.tshark"
grep -vE '^(connections|closes_completed|resets) ' "$JSONDIR/counts.sm" >"$JSONDIR/counts.sm6"
if diff -u "$JSONDIR/counts.tshark" "$JSONDIR/counts.sm6" >&2; then
	log "counts: sockmedic = tshark ($(tr '\n' ' ' <"$JSONDIR/counts.tshark"))"
else
	log "COUNTS DIFFER: sockmedic vs tshark"; CHECK_FAIL=1
fi
[[ $td_fin == "$t_fin" ]] || { log "COUNTS DIFFER: tcpdump counts $td_fin FIN packets, tshark $t_fin"; CHECK_FAIL=1; }
[[ $cap_packets == "$t_frames" ]] || { log "COUNTS DIFFER: capinfos counts $cap_packets packets, tshark $t_frames"; CHECK_FAIL=1; }
sm_conns=$(jq -r .capture.connections "$JSONDIR/report.json")
[[ $sm_conns == "$t_conv" ]] || log "note: sockmedic counts $sm_conns connections, tshark's conv,tcp $t_conv conversations"
[[ $CHECK_FAIL == 0 ]] || die "counts differ (see above)"

# ---------------------------------------------------------------- timing
# Each entry: id | slow (1 = only in the first SLOW_RUNS rounds, no warm-up) | shell (0 = -N) | label | command
BENCHES=()
SEP=$'\x1f'
add() { BENCHES+=("$1$SEP$2$SEP$3$SEP$4$SEP$5"); }
IOFIN="io,stat,0,COUNT(tcp.flags.fin)tcp.flags.fin==1"
add sm 0 0 "sockmedic pcap F" "$SM pcap $F"
add sm_json 0 0 "sockmedic pcap F --json" "$SM pcap $F --json"
add sm_ng 0 0 "sockmedic pcap F.pcapng --json" "$SM pcap $F_NG --json"
add sm_128 0 0 "sockmedic pcap F-s128.pcap --json (snaplen 128)" "$SM pcap $F_128 --json"
add sm_gz 0 0 "sockmedic pcap F.gz --json" "$SM pcap $F_GZ --json"
add sm_stdin 0 1 "cat F | sockmedic pcap - --json" "cat $F | $SM pcap - --json"
add tcpdump 0 1 "tcpdump -n -r F '$TD_FIN' | wc -l" "tcpdump -n -r $F '$TD_FIN' 2>/dev/null | wc -l"
add capinfos 0 0 "capinfos -c F" "capinfos -c $F"
add ts_conv 1 0 "tshark -n -r F -q -z conv,tcp" "tshark -n -r $F -q -z conv,tcp"
add ts_fin 1 1 "tshark -n -r F -Y 'tcp.flags.fin==1' | wc -l" "tshark -n -r $F -Y 'tcp.flags.fin==1' 2>/dev/null | wc -l"
add ts_both 1 0 "tshark -n -r F -q -z conv,tcp -z '$IOFIN'" "tshark -n -r $F -q -z conv,tcp -z '$IOFIN'"
add ts_gz 1 1 "zcat F.gz | tshark -n -r - -q -z conv,tcp -z '$IOFIN'" "zcat $F_GZ | tshark -n -r - -q -z conv,tcp -z '$IOFIN'"
is_sm() { [[ $1 == sm* ]]; } # exit 1-2 = findings (checked above)

cpu_idle_pct() {
	local a b
	a=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	sleep 3
	b=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," "); t=y[1]-x[1]; printf "%d", (t > 0 ? 100*(y[2]-x[2])/t : 100)}'
}
warm() { # read every file, so every command finds it in the page cache
	cat "$F" "$F_GZ" "$F_NG" "$F_128" >/dev/null
}
resident() { fincore -b -n -o RES,SIZE "$F" "$F_GZ" "$F_NG" "$F_128" | awk '{ r += $1; s += $2 } END { printf "%.0f", s ? 100 * r / s : 0 }'; }
warm
RES0=$(resident)
IDLE0=$(cpu_idle_pct)
log "CPU idle before timing: $IDLE0%; the captures are ${RES0}% in the page cache"
# Interleaved rounds as in run.sh: round 0 is the warm-up (fast commands only), then
# every command once per round (tshark in the first SLOW_RUNS rounds only).
for ((r = 0; r <= RUNS; r++)); do
	log "round $r of $RUNS$([[ $r == 0 ]] && echo " (warm-up, not counted)")"
	warm
	for b in "${BENCHES[@]}"; do
		IFS=$SEP read -r id slow shell label cmd <<<"$b"
		((slow == 1 && (r == 0 || r > SLOW_RUNS))) && continue
		hf=(hyperfine --runs 1 --style none --export-json "$JSONDIR/$id.r$r.json" --command-name "$label")
		[[ $shell == 0 ]] && hf+=(-N)
		is_sm "$id" && hf+=(-i)
		"${hf[@]}" "$cmd" >&2 || die "hyperfine: $label"
		[[ $r == 0 ]] && rm -f "$JSONDIR/$id.r0.json"
		((r == 0)) || log "  $(jq -r '.results[0].times[0] * 1000 | floor' "$JSONDIR/$id.r$r.json") ms  $label"
	done
done
RES1=$(resident)
for b in "${BENCHES[@]}"; do
	IFS=$SEP read -r id slow shell label cmd <<<"$b"
	summarize_rounds "$JSONDIR" "$id" "$label"
done

# Peak RSS (KiB) of each, one more run; for a pipeline: the largest process in it.
for b in "${BENCHES[@]}"; do
	IFS=$SEP read -r id slow shell label cmd <<<"$b"
	rc=0; /usr/bin/time -f %M -o "$JSONDIR/$id.rss" sh -c "$cmd" >/dev/null 2>&1 || rc=$?
	((rc == 0)) || { is_sm "$id" && ((rc <= 2)); } || die "time: $label exited $rc"
done
# sockmedic maps a plain file, so its RSS counts the file's pages: sample /proc/PID/status
# for the anonymous part (heap, stacks) and the file-backed part.
rss_split() { # rss_split OUT ARGS...: peak VmHWM, RssAnon, RssFile (KiB), sampled every 2 ms
	python3 - "$@" <<-'PY'
		import subprocess, sys, time
		out, cmd = sys.argv[1], sys.argv[2:]
		stdin = open(cmd.pop(), "rb") if cmd[-2] == "<" else None
		if stdin: cmd.pop()
		p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL)
		peak = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
		while p.poll() is None:
		    try:
		        for line in open(f"/proc/{p.pid}/status"):
		            k, _, v = line.partition(":")
		            if k in peak:
		                peak[k] = max(peak[k], int(v.split()[0]))
		    except (OSError, ValueError, IndexError):
		        pass
		    time.sleep(0.002)
		open(out, "w").write("{VmHWM} {RssAnon} {RssFile}\n".format(**peak))
	PY
}
rss_split "$JSONDIR/sm.split" "$SM" pcap "$F" --json
rss_split "$JSONDIR/sm_gz.split" "$SM" pcap "$F_GZ" --json
rss_split "$JSONDIR/sm_stdin.split" "$SM" pcap - --json "<" "$F"
IDLE1=$(cpu_idle_pct)

# ---------------------------------------------------------------- profile
if [[ $PROFILE == 1 ]]; then
	log "perf record: sockmedic pcap F --json"
	rc=0
	perf record -q -F 4999 -g -o "$OUTDIR/pcap-perf.data" -- "$SM" pcap "$F" --json >/dev/null 2>&1 || rc=$?
	((rc <= 2)) || die "perf record exited $rc"
	{
		echo "# perf record -F 4999 -g: sockmedic pcap $F --json (self time, by symbol)"
		perf report -i "$OUTDIR/pcap-perf.data" --stdio --no-children --sort dso,symbol -g none --percent-limit 0.5 2>/dev/null | grep -v '^$'
		echo
		echo "# by source line (self time)"
		perf report -i "$OUTDIR/pcap-perf.data" --stdio --no-children --sort srcline -g none --percent-limit 1 2>/dev/null | grep -v '^$'
	} >"$OUTDIR/pcap-profile.txt"
	log "profile: $OUTDIR/pcap-profile.txt"
fi

# ---------------------------------------------------------------- report
{
	echo "idle0=$IDLE0"
	echo "idle1=$IDLE1"
	echo "res0=$RES0"
	echo "res1=$RES1"
	echo "runs=$RUNS"
	echo "slow_runs=$SLOW_RUNS"
	echo "tshark_conv=$t_conv"
	echo "rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "cpu=$(lscpu | awk -F: '/^Model name/{gsub(/^ +/,"",$2); print $2; exit}')"
	echo "tshark=$(tshark --version 2>/dev/null | head -1)"
	echo "hyperfine=$(hyperfine --version)"
	for b in "${BENCHES[@]}"; do
		IFS=$SEP read -r id slow shell label cmd <<<"$b"
		echo "order=$id"
	done
} >"$JSONDIR/facts"
python3 - "$JSONDIR" "$META" "$F" "$F_GZ" "$F_NG" "$F_128" "$OUT" <<'PY'
import json, os, sys, time
jd, meta_path, f, f_gz, f_ng, f_128, out = sys.argv[1:]
meta = dict(l.rstrip("\n").split("=", 1) for l in open(meta_path))
facts = {}
order = []
for l in open(os.path.join(jd, "facts")):
    k, v = l.rstrip("\n").split("=", 1)
    if k == "order":
        order.append(v)
    else:
        facts[k] = v
res = {i: json.load(open(os.path.join(jd, i + ".json"))) for i in order}
rss = {i: int(open(os.path.join(jd, i + ".rss")).read().split()[-1]) for i in order}
split = {}
for i in ("sm", "sm_gz", "sm_stdin"):
    hwm, anon, filep = map(int, open(os.path.join(jd, i + ".split")).read().split())
    split[i] = (hwm, anon, filep)
cap = json.load(open(os.path.join(jd, "report.json")))["capture"]
size = {p: os.path.getsize(p) for p in (f, f_gz, f_ng, f_128)}
pk = cap["packets"]
med = lambda i: res[i]["median"]
def gb(n):
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
def fmt_s(t):
    return f"{t:.3f} s" if t >= 1 else f"{t * 1000:.1f} ms"
def mb(kib):
    return f"{kib / 1024:.0f} MB" if kib >= 10240 else f"{kib / 1024:.1f} MB"
# which file each command reads, for its throughput
reads = {"sm": f, "sm_json": f, "sm_ng": f_ng, "sm_128": f_128, "sm_gz": f_gz, "sm_stdin": f,
         "tcpdump": f, "capinfos": f, "ts_conv": f, "ts_fin": f, "ts_both": f, "ts_gz": f_gz}
ts_sum = med("ts_conv") + med("ts_fin")
ts_best = min(ts_sum, med("ts_both"))
L = []
mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
L.append(f"Capture: `{os.path.basename(f)}`, {pk:,} packets ({cap['tcp_packets']:,} TCP), "
         f"{gb(size[f])} ({size[f] / pk:.0f} bytes a packet with its record header), "
         f"{cap['connections']:,} connections (tshark's conv,tcp: {int(facts['tshark_conv']):,}); "
         f"SYN {cap['syn_packets']:,}, FIN {cap['fin_packets']:,} ({100 * cap['fin_packets'] / pk:.1f}%), "
         f"RST {cap['rst_packets']:,}, FIN retransmissions {cap['fin_retransmissions']:,}, "
         f"closes completed {cap['closes_completed']:,}, resets {cap['resets']:,}. "
         f"Made {meta['made']} by bench/pcapgen.c ({meta['client']}; the client ran {meta['client_seconds']} s), "
         f"tcpdump: {int(meta['captured']):,} captured, {meta['dropped']} dropped by the kernel. "
         f"Copies: gzip {gb(size[f_gz])}, pcapng {gb(size[f_ng])}, snaplen 128 {gb(size[f_128])}.")
L.append("")
L.append(f"Machine: {os.cpu_count()} cores, {facts['cpu']}, {mem:.1f} GiB, Linux {os.uname().release}; "
         f"{facts['tshark'].rstrip('.')}; {meta['tcpdump']}; {facts['hyperfine']}. Commit {facts['rev']}, "
         f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}. {facts['runs']} interleaved rounds after a warm-up round "
         f"(tshark in {facts['slow_runs']} of them, no warm-up); every file read before each round: "
         f"{facts['res0']}% / {facts['res1']}% of the four files resident before / after timing (fincore). "
         f"CPU idle before/after timing: {facts['idle0']}% / {facts['idle1']}%.")
L.append("")
if int(facts["idle0"]) < 80 or int(facts["idle1"]) < 80:
    L.append(f"**The machine was busy** (CPU idle {facts['idle0']}% before timing, {facts['idle1']}% after): wall times are inflated; CPU times are steadier.")
    L.append("")
L.append("| command | median | min | max | CPU (user+sys, median) | this ÷ `sockmedic pcap F` | throughput | peak RSS |")
L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
base = med("sm")
for i in order:
    r = res[i]
    thr = f"{size[reads[i]] / r['median'] / 1e9:.2f} GB/s, {pk / r['median'] / 1e6:.2f} M pkt/s"
    label = r["command"].replace("|", "\\|")
    L.append(f"| `{label}` | {fmt_s(r['median'])} | {fmt_s(r['min'])} | {fmt_s(r['max'])} | "
             f"{fmt_s(r['cpu'])} | {r['median'] / base:.2f} | {thr} | {mb(rss[i])} |")
L.append(f"| tshark conv,tcp + tshark FIN filter (sum of the two passes) | {fmt_s(ts_sum)} | | | "
         f"{fmt_s(res['ts_conv']['cpu'] + res['ts_fin']['cpu'])} | {ts_sum / base:.2f} | {size[f] / ts_sum / 1e9:.3f} GB/s | |")
L.append("")
L.append("Throughput: the bytes of the file the command reads (the compressed size for gzip) ÷ median wall time; 1 GB = 10⁹ bytes.")
L.append("")
a, b_, c = split["sm"]
g_hwm, g_anon, _ = split["sm_gz"]
s_hwm, s_anon, _ = split["sm_stdin"]
L.append(f"Memory of `sockmedic pcap F --json` (sampled every 2 ms from /proc/PID/status): peak RSS {mb(a)}, of which "
         f"anonymous (heap, stacks) {mb(b_)} and file-backed {mb(c)} (the mapped capture's pages, shared with the page "
         f"cache, and the binary). From gzip: {mb(g_hwm)} ({mb(g_anon)}, {mb(g_anon)} anonymous: streamed through a window, the rest is the connection table); "
         f"from stdin: {mb(s_hwm)} ({mb(s_anon)} anonymous, streamed likewise).")
L.append("")
sm_t, smj = med("sm"), med("sm_json")
ok = lambda c: "met" if c else "**missed**"
L.append("| target | result | |")
L.append("|---|---|---|")
L.append(f"| at least 20× faster than tshark doing the equivalent | "
         f"{ts_sum / sm_t:.0f}× the two passes (conv,tcp {med('ts_conv') / sm_t:.0f}×, FIN filter {med('ts_fin') / sm_t:.0f}×); "
         f"{med('ts_both') / sm_t:.0f}× the one combined pass; from gzip {med('ts_gz') / med('sm_gz'):.0f}× | "
         f"{ok(ts_best / sm_t >= 20)} |")
L.append(f"| at least 1 GB/s, page cache warm | {size[f] / sm_t / 1e9:.2f} GB/s (text), {size[f] / smj / 1e9:.2f} GB/s (`--json`); "
         f"{pk / sm_t / 1e6:.1f} M packets/s | {ok(size[f] / max(sm_t, smj) / 1e9 >= 1)} |")
if size[f] < 1e9:
    L.append("")
    L.append(f"(The capture is {gb(size[f])}, less than 1 GB: too small for the GB/s figure to mean much.)")
text = "\n".join(L) + "\n"
open(out, "w").write(text)
print(text)
PY
log "results: $OUT"
log "done"
