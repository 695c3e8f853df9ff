#!/usr/bin/env python3
"""Reproduces the incidents `sockmedic check` diagnoses, one per invocation, inside a
test network namespace (crates/sockmedic/tests/incidents.rs).

Run it as root INSIDE a fresh network namespace (`ip netns exec NAME python3
incidents.py SCENARIO ...`): it refuses to run in the initial namespace, because some
scenarios add nftables rules (table `inet smincident`), which must vanish with the
test's namespace. Sysctls are the test's business (it sets them inside the namespace
before starting a scenario).

Scenarios (all on 127.0.0.1; `teardown` and `syn-recv` take --drop-at input|output, the
nftables hook that drops, input by default: see nft_rule):
  teardown --state last-ack --port P --count N
        N connections to one listener on P; the clients close, the server reads EOF,
        then every packet towards P is dropped (nft) and the server closes: the server
        sockets wait in LAST-ACK (orphans) for the final ACK that never comes.
  teardown --state fin-wait-1 --port P --count N
        N connections to one listener on P; then every packet from P is dropped (nft)
        and the clients close: they wait in FIN-WAIT-1 (orphans) for an ACK of their
        FIN. The server keeps its sockets (CLOSE-WAIT, held). With --send B, each client
        sends B bytes just before it closes (unacknowledged too, when its FIN leaves).
        Every socket gets TCP_USER_TIMEOUT --life (default 90 s): the orphans die then,
        whatever tcp_orphan_retries says (they hold the namespace alive after
        `ip netns del`).
  syn-recv --port P --count N --backlog B
        a listener with backlog B; the clients' final handshake ACKs are dropped (nft),
        so N requests wait in SYN-RECV (the clients are ESTABLISHED and held).
  fd-server --port P --backlog B --nofile SOFT
        a server with RLIMIT_NOFILE SOFT that accepts and keeps every connection; once
        out of fds, accept() fails with EMFILE (it retries every 50 ms) and the accept
        queue fills.
  flood --port P [--every SECS] [--max N]
        a client that opens a non-blocking connection to P every SECS and keeps each
        one (up to N), for as long as it runs.
  churn --port P [--every SECS]
        a listener on P that closes every connection at once, and a client that keeps
        making short connections to it (the server side goes TIME-WAIT).
  connect --port P
        one blocking connect() to P; prints {"errno": n} (0 when it succeeded) and
        exits.

Protocol: when its incident is in place (checked in /proc/net/tcp where the scenario
makes states), a long-running scenario prints ONE JSON line, then holds everything
(and keeps its background activity going) until stdin closes or it is killed:
  {"ready": true, "pid", "netns_inode", "scenario", "listener": "127.0.0.1:P",
   "expect": {STATE: n}, "settled": bool, ...scenario fields}
"""

import argparse
import errno
import json
import os
import resource
import socket
import sys
import threading
import time

from testns import nft, refuse_host_netns

NFT_TABLE = "smincident"
ADDR = "127.0.0.1"
PROC_STATE = {
    0x01: "ESTABLISHED", 0x02: "SYN-SENT", 0x03: "SYN-RECV", 0x04: "FIN-WAIT-1",
    0x05: "FIN-WAIT-2", 0x06: "TIME-WAIT", 0x07: "CLOSE", 0x08: "CLOSE-WAIT",
    0x09: "LAST-ACK", 0x0A: "LISTEN", 0x0B: "CLOSING",
}


def log(msg):
    print(f"incidents[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    os._exit(2)


def nft_rule(rule, hook="input"):
    """Drops what `rule` matches in the input hook (after tcpdump saw the packet: a
    capture shows it, the receiver never gets it) or the output hook (before: the
    packet is lost before any capture, as seen from the receiver's side)."""
    nft(f"add table inet {NFT_TABLE}\n"
        f"add chain inet {NFT_TABLE} {hook} {{ type filter hook {hook} priority 0; }}\n"
        f"add rule inet {NFT_TABLE} {hook} {rule}\n")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def listener(port, backlog):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ADDR, port))
    s.listen(backlog)
    return s


def proc_net_tcp():
    """(state, local "ip:port", remote "ip:port") of every socket in /proc/net/tcp."""
    def ep(hexed):
        h, p = hexed.split(":")
        ip = ".".join(str(int(h[i:i + 2], 16)) for i in (6, 4, 2, 0))
        return f"{ip}:{int(p, 16)}"

    rows = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            x = line.split()
            rows.append((PROC_STATE.get(int(x[3], 16), "?"), ep(x[1]), ep(x[2])))
    return rows


def settle(check, seconds=30.0):
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def count(state, local=None, remote=None):
    return sum(1 for s, l, r in proc_net_tcp()
               if s == state and local in (None, l) and remote in (None, r))


def ready(**fields):
    out = dict(ready=True, pid=os.getpid(), netns_inode=os.stat("/proc/self/ns/net").st_ino,
               nofile=list(resource.getrlimit(resource.RLIMIT_NOFILE)))
    out.update(fields)
    print(json.dumps(out, sort_keys=True), flush=True)


def hold():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except KeyboardInterrupt:
        pass


def cap_life(s, seconds):
    """TCP_USER_TIMEOUT: once closed, the socket (an orphan whose packets are dropped)
    dies after `seconds` instead of tcp_orphan_retries' half hour. Orphans hold their
    namespace alive after `ip netns del`, so they must not outlive a test for long."""
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(seconds * 1000))


def pairs(lst, port, n):
    out = []
    for _ in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.connect((ADDR, port))
        s, _ = lst.accept()
        out.append((c, s))
    return out


# -- scenarios ------------------------------------------------------------------------
def teardown(a):
    raise_nofile()
    socket.setdefaulttimeout(20)
    ep = f"{ADDR}:{a.port}"
    lst = listener(a.port, max(a.count, 128))
    held = [lst]
    ps = pairs(lst, a.port, a.count)
    for c, s in ps:
        cap_life(c, a.life)
        cap_life(s, a.life)
    if a.state == "last-ack":
        for c, _ in ps:
            c.close()
        for _, s in ps:
            if s.recv(1) != b"":
                die("LAST-ACK server: expected EOF")
        nft_rule(f"tcp dport {a.port} drop", a.drop_at)
        for _, s in ps:
            s.close()
        state, key = "LAST-ACK", dict(local=ep)
    elif a.state == "fin-wait-1":
        nft_rule(f"tcp sport {a.port} drop", a.drop_at)
        for c, s in ps:
            if a.send:
                c.sendall(b"q" * a.send)
            c.close()
            held.append(s)
        state, key = "FIN-WAIT-1", dict(remote=ep)
    else:
        die(f"unknown state {a.state}")
    ok = settle(lambda: count(state, **key) == a.count)
    ready(scenario="teardown", state=state, listener=ep, expect={state: a.count},
          settled=ok, observed=count(state, **key))
    hold()


def syn_recv(a):
    raise_nofile()
    socket.setdefaulttimeout(20)
    ep = f"{ADDR}:{a.port}"
    lst = listener(a.port, a.backlog)
    nft_rule(f"tcp dport {a.port} tcp flags & (syn | ack) == ack drop", a.drop_at)
    clients = []
    for _ in range(a.count):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cap_life(c, 90)  # its FIN (an ACK to the rule) would be dropped too
        c.connect((ADDR, a.port))  # returns once the SYN-ACK came
        clients.append(c)
    ok = settle(lambda: count("SYN-RECV", local=ep) == a.count)
    ready(scenario="syn-recv", listener=ep, backlog=a.backlog,
          expect={"SYN-RECV": a.count}, settled=ok, observed=count("SYN-RECV", local=ep))
    hold()
    del lst, clients


def fd_server(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (a.nofile, hard))
    lst = listener(a.port, a.backlog)
    kept = []
    emfile = [0]

    def serve():
        while True:
            try:
                conn, _ = lst.accept()
                kept.append(conn)
            except OSError as e:
                if e.errno == errno.ECONNABORTED:
                    continue
                if e.errno not in (errno.EMFILE, errno.ENFILE):
                    die(f"accept: {e}")
                emfile[0] += 1
                time.sleep(0.05)

    threading.Thread(target=serve, daemon=True).start()
    ready(scenario="fd-server", listener=f"{ADDR}:{a.port}", backlog=a.backlog)
    hold()


def flood(a):
    raise_nofile()
    socks = []
    first = True
    while True:
        if len(socks) < a.max:
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            e = c.connect_ex((ADDR, a.port))
            if e not in (0, errno.EINPROGRESS):
                die(f"flood connect: errno {e}")
            socks.append(c)
        if first:
            ready(scenario="flood", target=f"{ADDR}:{a.port}")
            first = False
        time.sleep(a.every)


def churn(a):
    lst = listener(a.port, 512)

    def serve():
        while True:
            try:
                conn, _ = lst.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    made = [0]

    def client():
        while True:
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.settimeout(10)
            try:
                c.connect((ADDR, a.port))
                c.recv(1)
            except OSError:
                pass
            c.close()
            made[0] += 1
            time.sleep(a.every)

    threading.Thread(target=client, daemon=True).start()
    ready(scenario="churn", listener=f"{ADDR}:{a.port}")
    hold()


def connect(a):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(10)
    try:
        c.connect((ADDR, a.port))
        err = 0
    except OSError as e:
        err = e.errno
    print(json.dumps(dict(errno=err, error=os.strerror(err) if err else None)), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="scenario", required=True)
    p = sub.add_parser("teardown")
    p.add_argument("--state", required=True, choices=["last-ack", "fin-wait-1"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--life", type=float, default=90.0,
                   help="seconds an orphan lives at most (TCP_USER_TIMEOUT)")
    p.add_argument("--drop-at", choices=["input", "output"], default="input",
                   help="the nftables hook of the drop (see nft_rule)")
    p.add_argument("--send", type=int, default=0,
                   help="fin-wait-1: bytes each client sends right before it closes")
    p = sub.add_parser("syn-recv")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--backlog", type=int, required=True)
    p.add_argument("--drop-at", choices=["input", "output"], default="input",
                   help="the nftables hook of the drop (see nft_rule)")
    p = sub.add_parser("fd-server")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--backlog", type=int, required=True)
    p.add_argument("--nofile", type=int, required=True)
    p = sub.add_parser("flood")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--every", type=float, default=0.02)
    p.add_argument("--max", type=int, default=5000)
    p = sub.add_parser("churn")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--every", type=float, default=0.005)
    p = sub.add_parser("connect")
    p.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    refuse_host_netns(die)
    {"teardown": teardown, "syn-recv": syn_recv, "fd-server": fd_server, "flood": flood,
     "churn": churn, "connect": connect}[a.scenario](a)


if __name__ == "__main__":
    main()
