# bench/lib.sh: what every benchmark script needs, sourced after it sets BENCH_NAME:
# log and die (on stderr, stamped with the script's name and the time), and `need`,
# which installs a missing tool from Debian's packages (the scripts run as root).

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
