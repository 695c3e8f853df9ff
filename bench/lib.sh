# bench/lib.sh: what every benchmark script needs, sourced after it sets BENCH_NAME:
# log and die (on stderr, stamped with the script's name and the time), `need`, which
# installs a missing tool from Debian's packages (the scripts run as root), the
# network namespace helpers (ns_exists, teardown_ns, claim_ns), stop_pid, and the
# summary of a command's hyperfine rounds.

log() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

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

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }
teardown_ns() { # teardown_ns NAME: kill whatever still lives in it, then delete it
	local ns=$1 pids i
	ns_exists "$ns" || return 0
	for i in 1 2 3 4 5; do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		[[ -z $pids ]] && break
		kill -KILL $pids 2>/dev/null || true
		sleep 0.5
	done
	ip netns del "$ns" 2>/dev/null || true
}

# claim_ns: makes $NS this run's namespace name. A live run holds a lock on its
# namespace's name (its holders inherit it, so it is released when the run and its
# holders are gone). A run that finds the name locked (CI's --small next to someone's
# full run on a shared machine) uses NAME-PID instead of tearing the live run down; a
# namespace whose name nobody locks is stale, and removed. Sets NS and OWN_NS=1.
LOCKDIR=/run/lock
[[ -d $LOCKDIR && -w $LOCKDIR ]] || LOCKDIR=${TMPDIR:-/tmp}
lock_ns() { # lock_ns NAME: succeeds if this run now holds the lock on NAME
	exec {LOCK_FD}>"$LOCKDIR/sockmedic-bench.$1.lock" || return 1
	flock -n "$LOCK_FD" && return 0
	exec {LOCK_FD}>&-
	return 1
}
claim_ns() {
	if ! lock_ns "$NS"; then
		log "namespace $NS is in use by another live run: using $NS-$$"
		NS=$NS-$$
		lock_ns "$NS" || die "cannot lock $LOCKDIR/sockmedic-bench.$NS.lock"
	fi
	OWN_NS=1
	if ns_exists "$NS"; then
		log "removing a stale namespace $NS (a previous run that did not finish)"
		teardown_ns "$NS"
		ns_exists "$NS" && die "namespace $NS exists and cannot be removed"
	fi
	return 0
}

stop_pid() { # stop_pid PID: SIGTERM, 30 s to exit, then SIGKILL; reaps it
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

# summarize_rounds DIR ID LABEL: DIR/ID.r*.json (one hyperfine run each) into
# DIR/ID.json: median, min, max of wall time; median of user+sys CPU time.
summarize_rounds() {
	local dir=$1 id=$2 label=$3
	jq -s --arg name "$label" '
		def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		[.[].results[0]] as $r
		| { command: $name, runs: ($r | length), times: [$r[].times[0]],
		    median: ([$r[].times[0]] | median), min: ([$r[].times[0]] | min), max: ([$r[].times[0]] | max),
		    cpu: ([$r[] | .user + .system] | median) }' "$dir/$id".r*.json >"$dir/$id.json" ||
		die "summarising $id"
}
