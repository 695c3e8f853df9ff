#!/usr/bin/env python3
"""Brings TCP sockets into every state that matters, inside a test network namespace.

Used by sockmedic's integration tests (crates/sockmedic/tests). Run it as root INSIDE a
fresh network namespace (`ip netns exec NAME python3 statemaker.py`): it refuses to run
in the initial namespace, because it changes sysctls and adds nftables rules, and both
must vanish with the test's namespace.

What it makes, on 127.0.0.1 and on ::1 (each family with its own counts and ports):
  ESTABLISHED   pairs through a listener
  accept queue  a listener with a small backlog and backlog+1 connections never
                accepted (the queue is full: Recv-Q = backlog+1, Send-Q = backlog)
  SYN-RECV      on one listener, by dropping the client's final handshake ACK (nft);
                the clients are ESTABLISHED
  SYN-SENT      connects to a port whose SYNs are dropped (nft)
  FIN-WAIT-1    the server closes (orphan) and the client's ACKs are dropped (nft);
                the clients are left in CLOSE-WAIT
  FIN-WAIT-2    the client half-closes (shutdown SHUT_WR, fd held); the server is left
                in CLOSE-WAIT (a "close-wait leak" on the server's endpoint)
  TIME-WAIT     the server closes first, then the client: TIME-WAIT on the server side
  LAST-ACK      the client closes, then the server, and the client's final ACK is
                dropped (nft): server LAST-ACK, client TIME-WAIT
  BOUND-INACTIVE  bind() without listen(): a group sharing one port (SO_REUSEADDR),
                singles, one bound to port 0 (an ephemeral port); plus clients that
                bound an explicit port and were reset
  wildcard      listeners on 0.0.0.0 and [::] (dual-stack: v4-mapped connections;
                one port with a listener per family), with connections and SYN-RECV
  unhashed      sockets created and never used, and connections reset by the peer
                (SO_LINGER 0) while the fd is held (auto-bound: in no table at all)

Timers are stretched inside the namespace (tcp_syn_retries, tcp_synack_retries,
tcp_orphan_retries) so that the half-open and closing states outlive a test. TIME-WAIT
still lasts 60 s.

When every state is in place (checked through /proc/net/tcp and tcp6), it prints ONE
JSON line on stdout, then holds everything until stdin closes or it is killed. The line:
  {"ready": true, "settled": bool, "pid": N, "netns_inode": N,
   "expect": {STATE: count, ...},           # per state, both families, report names
   "process": {"states": {...}, "unhashed": n},  # what this process's fds hold
   "orphans": n,                            # full sockets closed by the application
   "listeners": [{"local", "backlog", "accept_queue", "syn_recv"}],
   "ports": {"v4": {scenario: port}, "v6": {...}}, "bound_ports": [...],
   "observed": {STATE: count},              # /proc/net/tcp{,6} at ready time
   "baseline": {STATE: count}}              # ... and before it made anything
"""

import argparse
import json
import os
import socket
import struct
import sys
import time

from testns import nft, refuse_host_netns

STATES = [
    "ESTABLISHED", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
    "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING", "BOUND-INACTIVE",
]
PROC_STATE = {
    0x01: "ESTABLISHED", 0x02: "SYN-SENT", 0x03: "SYN-RECV", 0x04: "FIN-WAIT-1",
    0x05: "FIN-WAIT-2", 0x06: "TIME-WAIT", 0x07: "CLOSE", 0x08: "CLOSE-WAIT",
    0x09: "LAST-ACK", 0x0A: "LISTEN", 0x0B: "CLOSING",
}

# Counts per family. Chosen so that the totals per state differ from each other and
# the two families differ from each other, so a mix-up shows.
COUNTS = {
    "v4": dict(est=3, aq_backlog=2, syn_recv=4, syn_sent=2, fin_wait1=5, fin_wait2=6,
               time_wait=7, last_ack=8, bound_group=3, bound_single=2, bound_auto=1,
               reset_bound=1, never=3, reset=2),
    "v6": dict(est=2, aq_backlog=1, syn_recv=3, syn_sent=1, fin_wait1=4, fin_wait2=5,
               time_wait=6, last_ack=7, bound_group=2, bound_single=2, bound_auto=1,
               reset_bound=2, never=1, reset=3),
}
BASE_PORT = {"v4": 7000, "v6": 7100}
SCENARIO_PORT = dict(est=1, aq=2, syn_recv=3, syn_sent=4, fin_wait1=5, fin_wait2=6,
                     time_wait=7, last_ack=8, reset=9, bound_group=10, bound_single=11,
                     reset_bound=20)
NFT_TABLE = "smstate"


def log(msg):
    print(f"statemaker: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(2)


def netns_inode(path):
    return os.stat(path).st_ino


def write_sysctl(name, value):
    with open("/proc/sys/net/ipv4/" + name, "w") as f:
        f.write(str(value))


class Family:
    def __init__(self, key, held):
        self.key = key
        self.fam = socket.AF_INET if key == "v4" else socket.AF_INET6
        self.addr = "127.0.0.1" if key == "v4" else "::1"
        self.c = COUNTS[key]
        self.held = held
        self.ports = {k: BASE_PORT[key] + v for k, v in SCENARIO_PORT.items()}
        self.listeners = []
        self.bound_ports = []

    def ep(self, port):
        return f"{self.addr}:{port}" if self.key == "v4" else f"[{self.addr}]:{port}"

    def sock(self):
        s = socket.socket(self.fam, socket.SOCK_STREAM)
        if self.fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.held.append(s)
        return s

    def release(self, s):
        self.held.remove(s)

    def listener(self, scenario, backlog=16, accept_queue=0, syn_recv=0):
        port = self.ports[scenario]
        s = self.sock()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.addr, port))
        s.listen(backlog)
        self.listeners.append(dict(local=self.ep(port), backlog=backlog,
                                   accept_queue=accept_queue, syn_recv=syn_recv))
        return s

    def client(self, port, bind_port=None):
        c = self.sock()
        if bind_port is not None:
            c.bind((self.addr, bind_port))
        c.connect((self.addr, port))
        return c

    def pairs(self, lst, port, n):
        out = []
        for _ in range(n):
            c = self.client(port)
            s, _ = lst.accept()
            self.held.append(s)
            out.append((c, s))
        return out

    def build(self, expect, proc):
        c, p = self.c, self.ports

        def add(d, state, n):
            d[state] = d.get(state, 0) + n

        # ESTABLISHED pairs.
        lst = self.listener("est")
        self.pairs(lst, p["est"], c["est"])
        add(expect, "ESTABLISHED", 2 * c["est"])
        add(proc, "ESTABLISHED", 2 * c["est"])

        # Full accept queue: backlog b holds b+1 completed connections.
        b = c["aq_backlog"]
        self.listener("aq", backlog=b, accept_queue=b + 1)
        for _ in range(b + 1):
            self.client(p["aq"])
        add(expect, "ESTABLISHED", 2 * (b + 1))  # clients + children in the queue
        add(proc, "ESTABLISHED", b + 1)          # children have no fd (inode 0)

        # SYN-RECV: drop the client's final handshake ACK.
        self.listener("syn_recv", syn_recv=c["syn_recv"])
        nft(f"add rule inet {NFT_TABLE} input tcp dport {p['syn_recv']} "
            f"tcp flags & (syn | ack) == ack drop\n")
        for _ in range(c["syn_recv"]):
            self.client(p["syn_recv"])  # returns once the SYN-ACK came: ESTABLISHED
        add(expect, "SYN-RECV", c["syn_recv"])
        add(expect, "ESTABLISHED", c["syn_recv"])
        add(proc, "ESTABLISHED", c["syn_recv"])

        # SYN-SENT: SYNs to this port are dropped.
        nft(f"add rule inet {NFT_TABLE} input tcp dport {p['syn_sent']} drop\n")
        for _ in range(c["syn_sent"]):
            s = self.sock()
            s.setblocking(False)
            err = s.connect_ex((self.addr, p["syn_sent"]))
            if err not in (0, 115):  # EINPROGRESS
                die(f"connect to the SYN-SENT port: errno {err}")
        add(expect, "SYN-SENT", c["syn_sent"])
        add(proc, "SYN-SENT", c["syn_sent"])

        # FIN-WAIT-1: the server closes, the client's ACKs are dropped.
        lst = self.listener("fin_wait1")
        pairs = self.pairs(lst, p["fin_wait1"], c["fin_wait1"])
        nft(f"add rule inet {NFT_TABLE} input tcp dport {p['fin_wait1']} "
            f"drop\n")
        for _, s in pairs:
            self.release(s)
            s.close()
        add(expect, "FIN-WAIT-1", c["fin_wait1"])
        add(expect, "CLOSE-WAIT", c["fin_wait1"])
        add(proc, "CLOSE-WAIT", c["fin_wait1"])

        # FIN-WAIT-2 + CLOSE-WAIT: the client half-closes and holds its fd; the
        # server never closes.
        lst = self.listener("fin_wait2")
        for cl, _ in self.pairs(lst, p["fin_wait2"], c["fin_wait2"]):
            cl.shutdown(socket.SHUT_WR)
        add(expect, "FIN-WAIT-2", c["fin_wait2"])
        add(expect, "CLOSE-WAIT", c["fin_wait2"])
        add(proc, "FIN-WAIT-2", c["fin_wait2"])
        add(proc, "CLOSE-WAIT", c["fin_wait2"])

        # TIME-WAIT on the server side: the server closes first, then the client.
        lst = self.listener("time_wait")
        pairs = self.pairs(lst, p["time_wait"], c["time_wait"])
        for _, s in pairs:
            self.release(s)
            s.close()
        for cl, _ in pairs:
            cl.settimeout(10)
            if cl.recv(1) != b"":
                die("TIME-WAIT client: expected EOF")
            self.release(cl)
            cl.close()
        add(expect, "TIME-WAIT", c["time_wait"])

        # LAST-ACK: the client closes, then the server; the client's final ACK is
        # dropped. The clients go TIME-WAIT.
        lst = self.listener("last_ack")
        pairs = self.pairs(lst, p["last_ack"], c["last_ack"])
        for cl, _ in pairs:
            self.release(cl)
            cl.close()
        for _, s in pairs:
            s.settimeout(10)
            if s.recv(1) != b"":
                die("LAST-ACK server: expected EOF")
        nft(f"add rule inet {NFT_TABLE} input tcp dport {p['last_ack']} drop\n")
        for _, s in pairs:
            self.release(s)
            s.close()
        add(expect, "LAST-ACK", c["last_ack"])
        add(expect, "TIME-WAIT", c["last_ack"])
        # Closed by the application and still held by TCP as full sockets.
        self.orphans = c["fin_wait1"] + c["last_ack"]

        # Connections reset by the peer (SO_LINGER 0) while the client holds the fd.
        # Auto-bound clients lose their port: in no table (unhashed). Clients that
        # bound an explicit port keep it: BOUND-INACTIVE.
        lst = self.listener("reset")
        resets = []
        for _ in range(c["reset"]):
            cl = self.client(p["reset"])
            s, _ = lst.accept()
            resets.append((cl, s))
        for k in range(c["reset_bound"]):
            cl = self.client(p["reset"], bind_port=p["reset_bound"] + k)
            self.bound_ports.append(self.ep(p["reset_bound"] + k))
            s, _ = lst.accept()
            resets.append((cl, s))
        for _, s in resets:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        for cl, _ in resets:
            cl.settimeout(10)
            try:
                cl.recv(1)
                die("reset client: expected ECONNRESET")
            except ConnectionResetError:
                pass
        add(expect, "BOUND-INACTIVE", c["reset_bound"])
        add(proc, "BOUND-INACTIVE", c["reset_bound"])
        self.unhashed = c["reset"]

        # Bound, never listening nor connecting.
        for _ in range(c["bound_group"]):
            s = self.sock()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.addr, p["bound_group"]))
            self.bound_ports.append(self.ep(p["bound_group"]))
        for k in range(c["bound_single"]):
            s = self.sock()
            s.bind((self.addr, p["bound_single"] + k))
            self.bound_ports.append(self.ep(p["bound_single"] + k))
        # bind(addr, 0): the kernel picks a port from ip_local_port_range.
        for _ in range(c["bound_auto"]):
            s = self.sock()
            s.bind((self.addr, 0))
            self.bound_ports.append(self.ep(s.getsockname()[1]))
        n = c["bound_group"] + c["bound_single"] + c["bound_auto"]
        add(expect, "BOUND-INACTIVE", n)
        add(proc, "BOUND-INACTIVE", n)

        # Created and never used.
        for _ in range(c["never"]):
            self.sock()
        self.unhashed += c["never"]

        add(expect, "LISTEN", len(self.listeners))
        add(proc, "LISTEN", len(self.listeners))


WILD_PORT = dict(dual_est=7201, dual_syn_recv=7202, split_syn_recv=7204, any4_est=7205)


class Wildcard:
    """Listeners on the unspecified address, the way most servers listen: a dual-stack
    IPv6 listener (IPv4 clients arrive as v4-mapped IPv6 sockets, their half-open
    requests as IPv4), one port with a listener per family, an IPv4 wildcard."""

    key = "wild"

    def __init__(self, held):
        self.held = held
        self.ports = dict(WILD_PORT)
        self.listeners = []
        self.bound_ports = []
        self.unhashed = 0
        self.orphans = 0

    def sock(self, fam, v6only=True):
        s = socket.socket(fam, socket.SOCK_STREAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        self.held.append(s)
        return s

    def listener(self, fam, port, v6only=True, syn_recv=0):
        s = self.sock(fam, v6only)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        any_addr = "::" if fam == socket.AF_INET6 else "0.0.0.0"
        s.bind((any_addr, port))
        s.listen(16)
        local = f"[::]:{port}" if fam == socket.AF_INET6 else f"0.0.0.0:{port}"
        self.listeners.append(dict(local=local, backlog=16, accept_queue=0, syn_recv=syn_recv))
        return s

    def connect(self, fam, port):
        c = self.sock(fam)
        c.connect(("::1" if fam == socket.AF_INET6 else "127.0.0.1", port))
        return c

    def build(self, expect, proc):
        p = self.ports
        v4, v6 = socket.AF_INET, socket.AF_INET6

        def add(d, state, n):
            d[state] = d.get(state, 0) + n

        lst = self.listener(v6, p["dual_est"], v6only=False)
        for fam in (v4, v4, v6, v6):
            self.connect(fam, p["dual_est"])
            s, _ = lst.accept()
            self.held.append(s)
        add(expect, "ESTABLISHED", 8)
        add(proc, "ESTABLISHED", 8)

        self.listener(v6, p["dual_syn_recv"], v6only=False, syn_recv=3)
        nft(f"add rule inet {NFT_TABLE} input tcp dport {p['dual_syn_recv']} "
            f"tcp flags & (syn | ack) == ack drop\n")
        for fam in (v4, v4, v6):
            self.connect(fam, p["dual_syn_recv"])

        self.listener(v4, p["split_syn_recv"], syn_recv=1)
        self.listener(v6, p["split_syn_recv"], v6only=True, syn_recv=2)
        nft(f"add rule inet {NFT_TABLE} input tcp dport {p['split_syn_recv']} "
            f"tcp flags & (syn | ack) == ack drop\n")
        for fam in (v4, v6, v6):
            self.connect(fam, p["split_syn_recv"])
        add(expect, "SYN-RECV", 6)
        add(expect, "ESTABLISHED", 6)
        add(proc, "ESTABLISHED", 6)

        lst = self.listener(v4, p["any4_est"])
        self.connect(v4, p["any4_est"])
        s, _ = lst.accept()
        self.held.append(s)
        add(expect, "ESTABLISHED", 2)
        add(proc, "ESTABLISHED", 2)

        add(expect, "LISTEN", len(self.listeners))
        add(proc, "LISTEN", len(self.listeners))


def proc_net_counts():
    counts = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            next(f)
            for line in f:
                st = PROC_STATE.get(int(line.split()[3], 16), "?")
                counts[st] = counts.get(st, 0) + 1
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="v4,v6")
    ap.add_argument("--settle", type=float, default=30.0,
                    help="seconds to wait for every state to show in /proc/net/tcp")
    ap.add_argument("--no-wildcard", action="store_true",
                    help="leave out the listeners on the unspecified address")
    ap.add_argument("--netns-inode", type=int,
                    help="refuse to run unless this is the namespace's inode")
    args = ap.parse_args()

    refuse_host_netns(die, args.netns_inode)

    # A connect or accept that hangs (a drop rule hitting the wrong connection) fails
    # the test instead of hanging it.
    socket.setdefaulttimeout(20)

    # Keep half-open and closing sockets alive for the length of a test (these are
    # per-namespace sysctls).
    write_sysctl("tcp_syn_retries", 10)
    write_sysctl("tcp_synack_retries", 10)
    write_sysctl("tcp_orphan_retries", 12)
    nft(f"add table inet {NFT_TABLE}\n"
        f"add chain inet {NFT_TABLE} input {{ type filter hook input priority 0; }}\n")

    # Sockets already in the namespace (another helper's): what this script makes
    # comes on top of them.
    baseline = proc_net_counts()
    held = []
    expect = {s: 0 for s in STATES}
    proc = {}
    fams = [Family(k, held) for k in args.families.split(",") if k]
    if not args.no_wildcard:
        fams.append(Wildcard(held))
    unhashed = 0
    for f in fams:
        f.build(expect, proc)
        unhashed += f.unhashed

    # Wait until the kernel's tables show every state (the drops and closes above
    # take effect within milliseconds on loopback).
    want = {s: n for s, n in expect.items() if s != "BOUND-INACTIVE"}
    deadline = time.monotonic() + args.settle
    while True:
        observed = proc_net_counts()
        settled = all(observed.get(s, 0) == baseline.get(s, 0) + n for s, n in want.items())
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    out = dict(
        ready=True,
        settled=settled,
        pid=os.getpid(),
        netns_inode=netns_inode("/proc/self/ns/net"),
        expect=expect,
        process=dict(states=proc, unhashed=unhashed),
        orphans=sum(f.orphans for f in fams),
        listeners=[l for f in fams for l in f.listeners],
        ports={f.key: f.ports for f in fams},
        bound_ports=[b for f in fams for b in f.bound_ports],
        observed=observed,
        baseline=baseline,
    )
    print(json.dumps(out, sort_keys=True), flush=True)
    if not settled:
        log(f"not settled: expected {want}, observed {observed}")

    # Hold every socket until stdin closes.
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
