#!/usr/bin/env python3
"""Many ESTABLISHED connections on loopback, held by several processes (one process
may hold only RLIMIT_NOFILE fds), for sockmedic's tests of a big namespace.

Run as root INSIDE a test network namespace: `ip netns exec NAME python3 bulk.py
--pairs N --holders K --base-port P`. Holder k listens on 127.0.0.1:(P+k) and makes
N/K connections to itself, keeping both ends. With --boundary it also binds sockets on
the ports either side of 32767/32768 (bound-inactive on IPv4, listeners on IPv6), where
a dump split by local port in two halves has its seam.

With --listen-ports N the holders also listen on N ports from --listen-base, on
127.0.0.1 and on ::1 each (2N listeners: LISTEN is not in CurrEstab, so `stat` dumps
them all).

Prints one JSON line when every holder is ready: {"pairs", "listeners": [...],
"bound": [...], "pids": [...], "listen_ports": [first, end), "listen_backlog"}, then
holds everything until stdin closes or it is killed; the holders exit when this
process does.
"""

import argparse
import json
import os
import resource
import socket
import sys

from testns import NET_NS_INIT_INO


LISTEN_BACKLOG = 7


def holder(port, pairs, listen_ports, ready_w, hold_r):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * pairs + 2 * len(listen_ports) + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    held = []
    for p in listen_ports:
        for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            l = socket.socket(fam, socket.SOCK_STREAM)
            if fam == socket.AF_INET6:
                l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            l.bind((addr, p))
            l.listen(LISTEN_BACKLOG)
            held.append(l)
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(4096)
    held.append(lst)
    for _ in range(pairs):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.connect(("127.0.0.1", port))
        s, _ = lst.accept()
        held.append(c)
        held.append(s)
    os.write(ready_w, b"k")
    # Hold until the parent goes away (its end of the pipe closes).
    while os.read(hold_r, 1):
        pass
    os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, required=True)
    ap.add_argument("--holders", type=int, default=4)
    ap.add_argument("--base-port", type=int, default=7400)
    ap.add_argument("--boundary", action="store_true")
    ap.add_argument("--listen-ports", type=int, default=0,
                    help="this many ports, each with an IPv4 and an IPv6 listener")
    ap.add_argument("--listen-base", type=int, default=20000)
    args = ap.parse_args()
    if os.stat("/proc/self/ns/net").st_ino == NET_NS_INIT_INO:
        print("bulk: refusing to run in the initial network namespace", file=sys.stderr)
        sys.exit(2)

    socket.setdefaulttimeout(20)  # fail, never hang
    keep = []
    bound, listeners = [], []
    if args.boundary:
        for port in (32767, 32768):
            b = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            b.bind(("127.0.0.1", port))
            keep.append(b)
            bound.append(f"127.0.0.1:{port}")
            l6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            l6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            l6.bind(("::1", port))
            l6.listen(8)
            keep.append(l6)
            listeners.append(f"[::1]:{port}")

    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pids = []
    per = args.pairs // args.holders
    for k in range(args.holders):
        n = per + (1 if k < args.pairs % args.holders else 0)
        lports = [p for i, p in enumerate(range(args.listen_base,
                                                args.listen_base + args.listen_ports))
                  if i % args.holders == k]
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            os.close(hold_w)
            try:
                holder(args.base_port + k, n, lports, ready_w, hold_r)
            except BaseException as e:  # noqa: BLE001 - report and let the parent fail
                print(f"bulk holder {k}: {e}", file=sys.stderr, flush=True)
                os._exit(1)
        pids.append(pid)
        listeners.append(f"127.0.0.1:{args.base_port + k}")
    os.close(ready_w)
    os.close(hold_r)
    got = 0
    while got < args.holders:
        b = os.read(ready_r, 16)
        if not b:
            print("bulk: a holder died before it was ready", file=sys.stderr, flush=True)
            sys.exit(1)
        got += len(b)
    print(json.dumps(dict(pairs=args.pairs, listeners=listeners, bound=bound, pids=pids,
                          listen_ports=[args.listen_base, args.listen_base + args.listen_ports],
                          listen_backlog=LISTEN_BACKLOG)),
          flush=True)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
