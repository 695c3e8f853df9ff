#!/usr/bin/env python3
"""Loads for sockmedic's host-wide tests (crates/sockmedic/tests/hostwide.rs): orphans,
TCP memory, and an ordinary healthy namespace.

Run it as root INSIDE a test network namespace (`ip netns exec NAME python3
hostwide.py ...`): it refuses to run in the initial namespace, because it changes
per-namespace sysctls and adds nftables rules, and both must vanish with the test's
namespace. It never touches a host-wide sysctl: the test does that, briefly.

  --orphans N --orphan-port P
        N FIN-WAIT-1 orphans on 127.0.0.1:P: N connections are made, then nft drops
        every packet to port P (the clients' ACKs), then the server closes its side.
        The clients are left in CLOSE-WAIT (held). tcp_orphan_retries is stretched in
        the namespace so that the orphans outlive the test.
  --spares K
        K more connections on port P, made before the drop rule, kept ESTABLISHED;
        after the rule each server side sends --spare-bytes that the client can never
        acknowledge (its ACKs are dropped). `close-spare` closes one: an orphan with
        unacknowledged data, the socket `__tcp_close` → `tcp_check_oom` looks at.
  --fill N --fill-port Q
        N connections on 127.0.0.1:Q whose receiver never reads; each sender writes
        (non-blocking) until its send queue is full. The namespace's tcp_rmem and
        tcp_wmem defaults are raised (--buf bytes) so that each holds megabytes:
        TCP memory (sockstat `mem`, host-wide) goes up by about N x 2 x buf.
        `close-filler` closes one sender with a full send queue.
  --healthy N --healthy-held M --healthy-port R
        An echo listener on 127.0.0.1:R; N connections each send a line, read the
        echo, and close cleanly, the client first (the clients go TIME-WAIT, the
        servers see EOF and close); M more are opened, used and held ESTABLISHED.

When everything is in place it prints ONE JSON line, then serves stdin line by line:
  report        the line again, with the queues measured now
  close-spare   close one spare server socket; prints {"closed": "spare", "outq": bytes,
                "state": TCP state number before the close}
  close-filler  close one filled sender; prints {"closed": "filler", "outq": bytes, ...}
  EOF           exit (everything is closed with the process).
The line: {"ready": true, "pid", "netns_inode", "orphans": n (made), "spares": n left,
  "fillers": n left, "fill_outq": bytes queued by the senders, "fill_inq": bytes
  queued at the receivers, "healthy": {"closed": n, "held": n}, "ports": {...}}
"""

import argparse
import fcntl
import json
import os
import socket
import struct
import sys
import termios
import threading
import time

from testns import nft, refuse_host_netns

NFT_TABLE = "smhostwide"
SIOCOUTQ = termios.TIOCOUTQ
SIOCINQ = termios.FIONREAD


def log(msg):
    print(f"hostwide[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    os._exit(2)


def write_sysctl(path, value):
    with open("/proc/sys/" + path, "w") as f:
        f.write(str(value))


def tcp_state(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def ioctl_int(s, req):
    return struct.unpack("i", fcntl.ioctl(s.fileno(), req, b"\0\0\0\0"))[0]


def wait_until(what, cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            die(f"timed out waiting for {what}")
        time.sleep(0.01)


def listener(port, backlog=4096):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(backlog)
    return s


def pairs(lst, port, n):
    out = []
    for _ in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.connect(("127.0.0.1", port))
        s, _ = lst.accept()
        out.append((c, s))
    return out


def proc_net_tcp_states(port):
    """TCP state numbers of the sockets whose local port is `port` (/proc/net/tcp)."""
    states = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            lport = int(fields[1].split(":")[1], 16)
            if lport == port:
                st = int(fields[3], 16)
                states[st] = states.get(st, 0) + 1
    return states


class Load:
    def __init__(self, a):
        self.a = a
        self.held = []
        self.spares = []
        self.fillers = []  # (sender, receiver)
        self.orphans = 0
        self.healthy_closed = 0
        self.healthy_held = 0

    def make_orphans(self):
        a = self.a
        port = a.orphan_port
        lst = listener(port)
        self.held.append(lst)
        made = pairs(lst, port, a.orphans)
        spares = pairs(lst, port, a.spares)
        nft(f"add rule inet {NFT_TABLE} input tcp dport {port} drop\n")
        for c, s in made:
            self.held.append(c)
            s.close()
        self.orphans = len(made)
        for c, s in spares:
            self.held.append(c)
            s.setblocking(False)
            sent = 0
            while sent < a.spare_bytes:
                try:
                    sent += s.send(b"x" * min(65536, a.spare_bytes - sent))
                except BlockingIOError:
                    break
            self.spares.append(s)
        # FIN-WAIT-1 on the server side for every closed one.
        wait_until(f"{self.orphans} FIN-WAIT-1 on port {port}",
                   lambda: proc_net_tcp_states(port).get(4, 0) == self.orphans)
        for s in self.spares:
            wait_until("a spare's data to stay unacknowledged", lambda: ioctl_int(s, SIOCOUTQ) > 0)

    def make_fill(self):
        a = self.a
        lst = listener(a.fill_port)
        self.held.append(lst)
        chunk = b"y" * 65536
        for c, s in pairs(lst, a.fill_port, a.fill):
            c.setblocking(False)
            # Write until the send queue is full and stays full (the receiver's window
            # closes, then the sender's buffer fills).
            idle = 0
            while idle < 20:
                try:
                    c.send(chunk)
                    idle = 0
                except BlockingIOError:
                    idle += 1
                    time.sleep(0.005)
            self.fillers.append((c, s))

    def make_healthy(self):
        a = self.a
        lst = listener(a.healthy_port, 128)
        self.held.append(lst)

        def serve(conn):
            with conn:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        return
                    conn.sendall(data)

        def accept_loop():
            while True:
                try:
                    conn, _ = lst.accept()
                except OSError:
                    return
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

        threading.Thread(target=accept_loop, daemon=True).start()
        for i in range(a.healthy + a.healthy_held):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.connect(("127.0.0.1", a.healthy_port))
            msg = f"hello {i}\n".encode()
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = c.recv(4096)
                if not d:
                    die("healthy: the echo server closed early")
                got += d
            if got != msg:
                die(f"healthy: echo {got!r} != {msg!r}")
            if i < a.healthy:
                c.close()
                self.healthy_closed += 1
            else:
                self.held.append(c)
                self.healthy_held += 1
        # Every closed connection: client TIME-WAIT, the server side gone.
        port = a.healthy_port

        def settled():
            n = 0
            with open("/proc/net/tcp") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    rport = int(fields[2].split(":")[1], 16)
                    lport = int(fields[1].split(":")[1], 16)
                    st = int(fields[3], 16)
                    if rport == port and st == 6:
                        n += 1
                    if lport == port and st not in (1, 10):
                        return False
            return n == self.healthy_closed

        wait_until("the healthy closes to settle", settled)

    def report(self):
        return dict(
            ready=True, pid=os.getpid(),
            netns_inode=os.stat("/proc/self/ns/net").st_ino,
            orphans=self.orphans,
            orphan_port_states={str(k): v for k, v in
                                proc_net_tcp_states(self.a.orphan_port).items()},
            spares=len(self.spares),
            spare_outq=[ioctl_int(s, SIOCOUTQ) for s in self.spares],
            fillers=len(self.fillers),
            fill_outq=sum(ioctl_int(c, SIOCOUTQ) for c, _ in self.fillers),
            fill_inq=sum(ioctl_int(s, SIOCINQ) for _, s in self.fillers),
            healthy=dict(closed=self.healthy_closed, held=self.healthy_held),
            ports=dict(orphan=self.a.orphan_port, fill=self.a.fill_port,
                       healthy=self.a.healthy_port),
        )

    def close_one(self, which):
        lst = self.spares if which == "spare" else self.fillers
        if not lst:
            return dict(error=f"no {which} left")
        item = lst.pop()
        s = item if which == "spare" else item[0]
        state = tcp_state(s)
        outq = ioctl_int(s, SIOCOUTQ)
        s.close()
        return dict(closed=which, outq=outq, state=state, left=len(lst))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orphans", type=int, default=0)
    ap.add_argument("--spares", type=int, default=0)
    ap.add_argument("--spare-bytes", type=int, default=65536)
    ap.add_argument("--orphan-port", type=int, default=7400)
    ap.add_argument("--fill", type=int, default=0)
    ap.add_argument("--fill-port", type=int, default=7401)
    ap.add_argument("--buf", type=int, default=4 << 20,
                    help="tcp_rmem/tcp_wmem default (bytes) in the namespace, for --fill")
    ap.add_argument("--healthy", type=int, default=0)
    ap.add_argument("--healthy-held", type=int, default=0)
    ap.add_argument("--healthy-port", type=int, default=7402)
    ap.add_argument("--netns-inode", type=int,
                    help="refuse to run unless this is the namespace's inode")
    a = ap.parse_args()

    refuse_host_netns(die, a.netns_inode)

    socket.setdefaulttimeout(20)
    # Per-namespace sysctls only, and only for the loads that need them (a healthy
    # namespace keeps every default).
    if a.orphans or a.spares:
        write_sysctl("net/ipv4/tcp_orphan_retries", 12)
    if a.fill:
        write_sysctl("net/ipv4/tcp_rmem", f"4096 {a.buf} {max(a.buf, 6 << 20)}")
        write_sysctl("net/ipv4/tcp_wmem", f"4096 {a.buf} {max(a.buf, 4 << 20)}")
    # A table of its own, empty (a previous run's rules would block the connects).
    nft(f"add table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n"
        f"add table inet {NFT_TABLE}\n"
        f"add chain inet {NFT_TABLE} input {{ type filter hook input priority 0; }}\n")

    load = Load(a)
    if a.orphans or a.spares:
        load.make_orphans()
    if a.fill:
        load.make_fill()
    if a.healthy or a.healthy_held:
        load.make_healthy()

    print(json.dumps(load.report(), sort_keys=True), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "report":
            out = load.report()
        elif cmd == "close-spare":
            out = load.close_one("spare")
        elif cmd == "close-filler":
            out = load.close_one("filler")
        else:
            die(f"unknown command {cmd!r}")
        print(json.dumps(out, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
