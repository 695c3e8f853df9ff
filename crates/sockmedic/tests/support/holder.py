#!/usr/bin/env python3
"""A process that holds sockets in known states, for sockmedic's "who holds it" tests
(crates/sockmedic/tests/procs.rs, pods.rs).

Run it inside a test network namespace (`ip netns exec NAME python3 holder.py ...`).
Everything it makes, it keeps (fds held) until stdin closes or it is killed, and it
knows what it holds: that bookkeeping is the ground truth for what no dump can show
(UNHASHED sockets, which are in no kernel table).

Options (all repeatable where it makes sense):
  --listen ADDR:PORT     a listener (PORT 0: ephemeral). An accept thread serves every
                         connection by its first byte: `k` keep it and answer `K`,
                         `c` close it (the client is left in CLOSE-WAIT), `r` reset it
                         (SO_LINGER 0, the client is left CLOSE with ECONNRESET).
  --connect EP:MODE:N    N connections to EP (`ADDR:PORT`, or `self` for this process's
                         first listener, `self6` for its first IPv6 one), MODE k|c|r as
                         above. Each is confirmed (TCP_INFO) before it counts.
  --never N[:v6]         TCP sockets created and never used (in no table: UNHASHED).
  --bound-ephemeral N[:v6]  TCP sockets bound to an ephemeral port (bind port 0), never
                         listening nor connected (BOUND-INACTIVE).
  --udp N                UDP sockets bound to 127.0.0.1:0.
  --unix N               AF_UNIX stream sockets (unbound; one fd each).
  --nofile SOFT:HARD     setrlimit(RLIMIT_NOFILE) first.
  --fill-fds-to N        after the sockets, open /dev/null until N fds are open.
  --setns PATH           make every socket inside the network namespace PATH (the
                         main thread enters it, and returns to its own when done: a
                         process holding sockets of another namespace, as a CNI
                         plugin or a proxy does). Use it without --listen (a listener's
                         accept thread would stay there).
  --wait-go              read one line from stdin before making anything (the test
                         moves the process into a cgroup meanwhile: a socket belongs to
                         the cgroup of the task that created it).

Protocol: when everything is in place it prints ONE JSON line (the report below) and
then serves stdin line by line:
  report   print the report again (a server's kept connections change as clients come)
  close    close every connection made with --connect (not the listeners), print
           {"closed": n}
  EOF      exit.
The report: {"ready": true, "pid", "netns_inode", "uid",
  "states": {STATE: n},   # what its fds hold, report spelling; UNHASHED included
  "unhashed": n,          # BOUND-INACTIVE + UNHASHED
  "socket_fds": n, "by_proto": {"TCP": n, "TCPv6": n, "UDP": n, "UNIX": n},
  "fds": n,               # /proc/self/fd entries (not counting the listing's own)
  "listeners": ["127.0.0.1:PORT", ...], "bound_ports": [...], "resets": n,
  "reset_ports": [...],   # the local ports the reset connections had
  "nofile": [soft, hard]}
"""

import argparse
import json
import os
import resource
import select
import socket
import struct
import sys
import threading
import time

TCP_STATES = {1: "ESTABLISHED", 7: "CLOSE", 8: "CLOSE-WAIT", 10: "LISTEN"}


def log(msg):
    print(f"holder[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    os._exit(2)


def tcp_state(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def fmt(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_ep(text):
    host, port = text.rsplit(":", 1)
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    return fam, (host, int(port))


class Holder:
    def __init__(self):
        self.lock = threading.Lock()
        self.listeners = []  # (socket, family)
        self.kept = []  # server side of kept connections
        self.clients = []  # (socket, family, expected state name)
        self.others = []  # (socket, proto name, state name or None)
        self.bound_ports = []
        self.resets = 0
        self.reset_ports = []

    # -- server side -------------------------------------------------------------
    def listen(self, text):
        fam, addr = parse_ep(text)
        s = socket.socket(fam, socket.SOCK_STREAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
        s.listen(128)
        self.listeners.append((s, fam))
        threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, lst):
        while True:
            try:
                conn, _ = lst.accept()
            except OSError:
                return
            try:
                conn.settimeout(30)
                op = conn.recv(1)
            except OSError:
                conn.close()
                continue
            if op == b"k":
                with self.lock:
                    self.kept.append(conn)
                conn.sendall(b"K")
            elif op == b"r":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            else:
                conn.close()

    # -- client side -------------------------------------------------------------
    def connect(self, text):
        ep, mode, n = text.rsplit(":", 2)
        if ep in ("self", "self6"):
            want = socket.AF_INET6 if ep == "self6" else socket.AF_INET
            lst = next((l for l, f in self.listeners if f == want), None)
            if lst is None:
                die(f"--connect {text}: no listener of that family")
            fam, addr = want, lst.getsockname()[:2]
        else:
            fam, addr = parse_ep(ep)
        for _ in range(int(n)):
            c = socket.socket(fam, socket.SOCK_STREAM)
            c.settimeout(30)
            c.connect(addr)
            c.sendall(mode.encode())
            if mode == "k":
                if c.recv(1) != b"K":
                    die("keep: no answer")
                self.wait_state(c, 1)
                self.clients.append((c, fam, "ESTABLISHED"))
            elif mode == "c":
                self.wait_state(c, 8)
                self.clients.append((c, fam, "CLOSE-WAIT"))
            elif mode == "r":
                self.reset_ports.append(c.getsockname()[1])
                # Wait for the RST without reading: SO_ERROR stays pending (ECONNRESET).
                self.wait_state(c, 7)
                p = select.poll()
                p.register(c, select.POLLERR)
                if not any(ev & select.POLLERR for _, ev in p.poll(10000)):
                    die("reset: no POLLERR")
                self.clients.append((c, fam, "UNHASHED"))
                self.resets += 1
            else:
                die(f"unknown mode {mode}")

    @staticmethod
    def wait_state(s, want):
        deadline = time.monotonic() + 20
        while tcp_state(s) != want:
            if time.monotonic() > deadline:
                die(f"socket never reached TCP state {want} (is {tcp_state(s)})")
            time.sleep(0.005)

    # -- sockets that go nowhere ---------------------------------------------------
    @staticmethod
    def count_fam(text):
        n, _, fam = text.partition(":")
        return int(n), socket.AF_INET6 if fam == "v6" else socket.AF_INET

    def never(self, text):
        n, fam = self.count_fam(text)
        for _ in range(n):
            self.others.append((socket.socket(fam, socket.SOCK_STREAM), fam, "UNHASHED"))

    def bound_ephemeral(self, text):
        n, fam = self.count_fam(text)
        for _ in range(n):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.bind(("::1" if fam == socket.AF_INET6 else "127.0.0.1", 0))
            self.bound_ports.append(s.getsockname()[1])
            self.others.append((s, fam, "BOUND-INACTIVE"))

    def udp(self, n):
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            self.others.append((s, None, "UDP"))

    def unix(self, n):
        for _ in range(n):
            self.others.append((socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), None, "UNIX"))

    # -- bookkeeping ---------------------------------------------------------------
    def report(self):
        states, by_proto = {}, {}

        def add(m, k, n=1):
            m[k] = m.get(k, 0) + n

        def proto(fam):
            return "TCPv6" if fam == socket.AF_INET6 else "TCP"

        with self.lock:
            kept = list(self.kept)
        for s, fam in self.listeners:
            add(states, "LISTEN")
            add(by_proto, proto(fam))
        for s in kept:
            add(states, "ESTABLISHED")
            add(by_proto, proto(s.family))
        for s, fam, st in self.clients:
            add(states, st)
            add(by_proto, proto(fam))
        for s, fam, st in self.others:
            if st in ("UDP", "UNIX"):
                add(by_proto, st)
            else:
                add(states, st)
                add(by_proto, proto(fam))
        fds = len(os.listdir("/proc/self/fd")) - 1
        return dict(
            ready=True, pid=os.getpid(), uid=os.geteuid(),
            netns_inode=os.stat("/proc/self/ns/net").st_ino,
            states=states,
            unhashed=states.get("UNHASHED", 0) + states.get("BOUND-INACTIVE", 0),
            socket_fds=sum(by_proto.values()), by_proto=by_proto, fds=fds,
            listeners=[fmt(s.getsockname()) for s, _ in self.listeners],
            bound_ports=sorted(self.bound_ports), resets=self.resets,
            reset_ports=sorted(self.reset_ports),
            nofile=list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", action="append", default=[])
    ap.add_argument("--connect", action="append", default=[])
    ap.add_argument("--never", action="append", default=[])
    ap.add_argument("--bound-ephemeral", action="append", default=[])
    ap.add_argument("--udp", type=int, default=0)
    ap.add_argument("--unix", type=int, default=0)
    ap.add_argument("--nofile")
    ap.add_argument("--fill-fds-to", type=int, default=0)
    ap.add_argument("--setns")
    ap.add_argument("--wait-go", action="store_true")
    a = ap.parse_args()

    if a.wait_go and sys.stdin.readline() == "":
        return
    home = None
    if a.setns:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_NEWNET = 0x40000000
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(a.setns, os.O_RDONLY)
        if libc.setns(target, CLONE_NEWNET) != 0:
            die(f"setns {a.setns}: errno {ctypes.get_errno()}")
        os.close(target)
    if a.nofile:
        soft, hard = (int(x) for x in a.nofile.split(":"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    h = Holder()
    for x in a.listen:
        h.listen(x)
    for x in a.connect:
        h.connect(x)
    for x in a.never:
        h.never(x)
    for x in a.bound_ephemeral:
        h.bound_ephemeral(x)
    h.udp(a.udp)
    h.unix(a.unix)
    if home is not None:
        if libc.setns(home, CLONE_NEWNET) != 0:
            die(f"setns back: errno {ctypes.get_errno()}")
        os.close(home)
    files = []
    if a.fill_fds_to:
        while len(os.listdir("/proc/self/fd")) - 1 < a.fill_fds_to:
            files.append(os.open("/dev/null", os.O_RDONLY))
    # Check every TCP socket is where the bookkeeping says.
    for s, _, st in h.clients:
        want = {"ESTABLISHED": 1, "CLOSE-WAIT": 8, "UNHASHED": 7}[st]
        if tcp_state(s) != want:
            die(f"client socket in state {tcp_state(s)}, expected {st}")
    print(json.dumps(h.report()), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "report":
            print(json.dumps(h.report()), flush=True)
        elif cmd == "close":
            n = len(h.clients)
            for s, _, _ in h.clients:
                s.close()
            h.clients = []
            print(json.dumps(dict(closed=n)), flush=True)
        else:
            die(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
