#!/bin/sh
# sockmedic collect --script: gathers what `sockmedic check` reads, with stock tools,
# on a host where sockmedic cannot be installed. POSIX sh (dash, busybox sh).
#
#   sh sockmedic-collect.sh [OUTDIR]     (as root, to see every namespace and process)
#
# Writes OUTDIR (default ./sockmedic-HOST-YYYYmmddTHHMMSSZ), laid out like a
# sosreport: each command's output in a file named after the command under
# sos_commands/, /proc files under proc/. Other network namespaces go under
# netns/NAME/ (`ip netns` names) or netns/pid-PID/ (entered through a process),
# one per namespace inode. Then OUTDIR.tar.gz if tar is there. Read it with
#   sockmedic check --from OUTDIR          (this namespace and the host figures)
#   sockmedic check --from OUTDIR/netns/NAME
# Never collected: payload data, environment variables, command lines.

set -u
umask 077
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH LC_ALL=C

have() { command -v "$1" >/dev/null 2>&1; }

host=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname 2>/dev/null || echo unknown)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${1:-sockmedic-$host-$stamp}
if ! mkdir -p "$out"; then
    echo "sockmedic collect script: cannot create $out" >&2
    exit 3
fi
errors="$out/sockmedic-collect.errors"
: >"$errors"

# run FILE CMD ARGS...: the command's output into FILE (its errors are listed).
run() {
    f=$1
    shift
    mkdir -p "$(dirname "$f")"
    if ! "$@" >"$f" 2>>"$errors"; then
        echo "failed: $*" >>"$errors"
    fi
}

# copy SRC DEST: a /proc file (cat, not cp: procfs sizes are 0).
copy() {
    mkdir -p "$(dirname "$2")"
    cat "$1" >"$2" 2>>"$errors" || { rm -f "$2"; echo "unreadable: $1" >>"$errors"; }
}

# The sysctls sockmedic reads (host-wide ones are read once, in the initial namespace).
HOST_SYSCTLS="net/ipv4/tcp_mem net/ipv4/tcp_max_orphans net/ipv4/udp_mem
net/core/mem_pcpu_rsv fs/file-max fs/nr_open fs/file-nr
net/netfilter/nf_conntrack_max"
NETNS_SYSCTLS="net/ipv4/tcp_orphan_retries net/ipv4/tcp_fin_timeout
net/ipv4/tcp_max_tw_buckets net/ipv4/tcp_tw_reuse net/ipv4/tcp_tw_reuse_delay
net/ipv4/tcp_timestamps net/ipv4/tcp_tw_recycle net/ipv4/ip_local_port_range
net/ipv4/ip_local_reserved_ports net/core/somaxconn net/ipv4/tcp_max_syn_backlog
net/ipv4/tcp_syncookies net/ipv4/tcp_synack_retries net/ipv4/tcp_syn_retries
net/ipv4/tcp_rmem net/ipv4/tcp_wmem net/ipv4/tcp_abort_on_overflow
net/ipv4/tcp_keepalive_time net/ipv4/tcp_keepalive_intvl net/ipv4/tcp_keepalive_probes
net/ipv4/tcp_retries2 net/ipv4/tcp_ehash_entries net/ipv4/tcp_child_ehash_entries
net/netfilter/nf_conntrack_count"

# ss -tanpoemi where ss knows -e/-m/-i/-o, else -tanp; named after what ran.
ss_listing() {
    sdir=$1
    shift
    if "$@" ss -tanpoemi >"$sdir/ss_-tanpoemi" 2>/dev/null; then
        return 0
    fi
    rm -f "$sdir/ss_-tanpoemi"
    run "$sdir/ss_-tanp" "$@" ss -tanp
}

# One namespace's view: DIR, then the command prefix that enters it (none: here).
namespace() {
    dir=$1
    shift
    mkdir -p "$dir/sos_commands/networking" "$dir/proc/net"
    # One socket listing only (two would count every socket twice).
    files="sockstat sockstat6 snmp netstat"
    if have ss; then
        run "$dir/sos_commands/networking/ss_-s" "$@" ss -s
        ss_listing "$dir/sos_commands/networking" "$@"
    elif have netstat; then
        run "$dir/sos_commands/networking/netstat_-antp" "$@" netstat -antp
        run "$dir/sos_commands/networking/netstat_-s" "$@" netstat -s
    else
        files="$files tcp tcp6"
    fi
    for f in $files; do
        # /proc/thread-self/net is the entered namespace's, /proc/net the leader's.
        if [ $# -eq 0 ]; then
            copy "/proc/net/$f" "$dir/proc/net/$f"
        else
            "$@" cat "/proc/net/$f" >"$dir/proc/net/$f" 2>>"$errors" ||
                { rm -f "$dir/proc/net/$f"; echo "unreadable: $* /proc/net/$f" >>"$errors"; }
        fi
    done
    for s in $NETNS_SYSCTLS; do
        [ -e "/proc/sys/$s" ] || [ $# -gt 0 ] || continue
        mkdir -p "$(dirname "$dir/proc/sys/$s")"
        "$@" cat "/proc/sys/$s" >"$dir/proc/sys/$s" 2>/dev/null || rm -f "$dir/proc/sys/$s"
    done
}

# ------------------------------------------------------------------ this host
run "$out/sos_commands/host/hostname" hostname
run "$out/sos_commands/date/date_--utc" date --utc
run "$out/sos_commands/kernel/uname_-a" uname -a
if have dmesg && dmesg >"$out/sos_commands/kernel/dmesg" 2>/dev/null && [ -s "$out/sos_commands/kernel/dmesg" ]; then
    :
else
    rm -f "$out/sos_commands/kernel/dmesg"
    if have journalctl; then
        mkdir -p "$out/sos_commands/logs"
        run "$out/sos_commands/logs/journalctl_-k" journalctl -k --no-pager
    fi
fi
have sysctl && run "$out/sos_commands/kernel/sysctl_-a" sysctl -a
mkdir -p "$out/sos_commands/process"
# A subshell of sh: the limits a process started from it would get.
(ulimit -a) >"$out/sos_commands/process/ulimit_-a" 2>>"$errors"
for s in $HOST_SYSCTLS; do
    [ -e "/proc/sys/$s" ] && copy "/proc/sys/$s" "$out/proc/sys/$s"
done
namespace "$out"

# /proc/PID/limits of the processes holding the most sockets (fds that are sockets).
tmp="$out/.sockets-per-pid"
: >"$tmp"
for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    n=0
    for fd in "$d"/fd/*; do
        case $(readlink "$fd" 2>/dev/null) in socket:*) n=$((n + 1)) ;; esac
    done
    [ "$n" -gt 0 ] && echo "$n $pid" >>"$tmp"
done
sort -rn "$tmp" 2>/dev/null | head -n 20 | while read -r n pid; do
    copy "/proc/$pid/limits" "$out/proc/$pid/limits"
    copy "/proc/$pid/comm" "$out/proc/$pid/comm"
done
rm -f "$tmp"

# ------------------------------------------------------------------ other namespaces
# Deduplicated by the namespace's inode; this one is already done.
seen=" $(stat -L -c %i /proc/self/ns/net 2>/dev/null) "
if have ip && [ -d /run/netns ]; then
    for f in /run/netns/*; do
        [ -e "$f" ] || continue
        ino=$(stat -L -c %i "$f" 2>/dev/null) || continue
        case $seen in *" $ino "*) continue ;; esac
        seen="$seen$ino "
        name=${f#/run/netns/}
        namespace "$out/netns/$name" ip netns exec "$name"
    done
fi
if have nsenter; then
    for d in /proc/[0-9]*; do
        ino=$(stat -L -c %i "$d/ns/net" 2>/dev/null) || continue
        case $seen in *" $ino "*) continue ;; esac
        seen="$seen$ino "
        pid=${d#/proc/}
        namespace "$out/netns/pid-$pid" nsenter "--net=$d/ns/net" --
    done
fi

cat >"$out/sockmedic-collect.txt" <<EOF
Collected by sockmedic collect --script on $host at $stamp.
Read with: sockmedic check --from $out
Other network namespaces: $out/netns/NAME (sockmedic check --from $out/netns/NAME)
Errors: sockmedic-collect.errors
EOF

if have tar; then
    base=$(basename "$out")
    parent=$(dirname "$out")
    if tar -C "$parent" -czf "$out.tar.gz" "$base" 2>>"$errors"; then
        echo "$out.tar.gz"
    fi
fi
echo "$out"
