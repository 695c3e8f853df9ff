#!/usr/bin/env python3
"""Ordinary TCP traffic for the live capture tests (crates/sockmedic/tests/pcap_live.rs),
run to completion inside a test network namespace while tcpdump captures it.

Run it as root INSIDE a fresh network namespace: it refuses to run in the initial one
(it may add an nftables table, `inet smpcaptraffic`, and removes it before it exits).

  normal --port P [--short N] [--reuse K] [--lossy]
      On 127.0.0.1:P and [::1]:P+1, one after another:
      - N short exchanges (a request, a response), alternately IPv4 and IPv6, the
        client closing first on even ones and the server on odd ones: clean closes;
      - K exchanges on ONE 4-tuple (the client bound to a fixed port, the server
        closing first, so that its TIME-WAIT lets the next SYN in at once): the
        capture holds K connections with the same addresses and ports;
      - one exchange closed by the client with SO_LINGER 0 (a RST);
      - one zero-window exchange: the receiver (SO_RCVBUF small) stops reading while
        the sender writes, until the sender's queue stops moving and the receiver's
        kernel has advertised a zero window; then it reads everything;
      - with --lossy, one bulk exchange on P+2 (40 writes of 1000 bytes) whose data
        segments are dropped now and then at the receiver (nft, input hook: the
        capture has the original and the retransmission): data retransmissions.
      Then prints ONE JSON line with what it did and exits:
        {"done": true, "clean": n, "reset": n, "zero_window": bool, "lossy": bool,
         "connections": n, "reuse_port": p}
"""

import argparse
import errno
import json
import os
import select
import socket
import struct
import sys
import time

from testns import nft, refuse_host_netns

NFT_TABLE = "smpcaptraffic"


def die(msg):
    print(f"pcaptraffic[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)
    os._exit(2)


def listener(fam, host, port, backlog=128, rcvbuf=None):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    if rcvbuf:
        # Set on the listener, inherited by the accepted socket (before the
        # handshake, so the window scale fits it).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((host, port))
    s.listen(backlog)
    return s


def recv_all(s, n):
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        if not chunk:
            die(f"EOF after {len(got)} of {n} bytes")
        got += chunk
    return got


def expect_eof(s):
    if s.recv(16) != b"":
        die("expected EOF")


def connect(fam, addr, bind=None):
    """A connected client; bound to `bind` (SO_REUSEADDR) if given. The 4-tuple of the
    previous connection from `bind` may still be in use for a moment (its LAST-ACK
    waiting for the ACK already on its way): connect() says EADDRNOTAVAIL, locally,
    without a packet; try again."""
    deadline = time.monotonic() + 5
    while True:
        c = socket.socket(fam, socket.SOCK_STREAM)
        c.settimeout(10)
        if bind is not None:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            c.bind(bind)
        try:
            c.connect(addr)
            return c
        except OSError as e:
            c.close()
            if e.errno != errno.EADDRNOTAVAIL or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def exchange(lst, fam, addr, server_closes, bind=None):
    """Request / response, then a clean close by one side; waits until both sides
    are done so the next exchange starts on a quiet loopback."""
    c = connect(fam, addr, bind)
    s, _ = lst.accept()
    s.settimeout(10)
    c.sendall(b"GET /%d HTTP/1.0\r\n\r\n" % os.getpid())
    recv_all(s, len(b"GET /%d HTTP/1.0\r\n\r\n" % os.getpid()))
    body = b"x" * 3000
    s.sendall(body)
    recv_all(c, len(body))
    first, second = (s, c) if server_closes else (c, s)
    first.close()
    expect_eof(second)
    second.close()


def linger_reset(lst, fam, addr):
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.settimeout(10)
    c.connect(addr)
    s, _ = lst.accept()
    s.settimeout(10)
    c.sendall(b"bye")
    recv_all(s, 3)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    try:
        s.recv(16)
        die("expected a reset")
    except ConnectionResetError:
        pass
    s.close()


def tcp_info_unacked(s):
    # struct tcp_info: 8 u8 fields, then u32s: rto ato snd_mss rcv_mss unacked ...
    raw = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("I", raw, 8 + 4 * 4)[0]


def zero_window(port):
    lst = listener(socket.AF_INET, "127.0.0.1", port, rcvbuf=2048)
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small send buffer: a few tens of kilobytes go through the small window, not
    # megabytes (the capture stays small).
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    c.connect(("127.0.0.1", port))
    s, _ = lst.accept()
    lst.close()
    c.setblocking(False)
    total = 0
    chunk = b"z" * 4096
    # Write until the send buffer is full and nothing is in flight any more: the
    # receiver's buffer is full and its window closed.
    deadline = time.monotonic() + 10
    quiet_since = None
    while True:
        try:
            total += c.send(chunk)
            quiet_since = None
            continue
        except BlockingIOError:
            pass
        if tcp_info_unacked(c) == 0:
            if quiet_since is None:
                quiet_since = time.monotonic()
            # Long enough for the persist timer's first probes (200 ms, 400 ms).
            elif time.monotonic() - quiet_since > 0.7:
                break
        if time.monotonic() > deadline:
            die("the zero window never came")
        time.sleep(0.02)
    # Read everything; the sender finishes what it queued, then closes.
    s.settimeout(10)
    got = 0
    c.setblocking(True)
    c.shutdown(socket.SHUT_WR)
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += len(b)
    if got != total:
        die(f"zero window: sent {total} got {got}")
    s.close()
    expect_eof(c)
    c.close()
    return total


def lossy(port):
    # Drop every 7th data segment towards the receiver from the 4th on, in the input
    # hook: tcpdump sees it, the receiver does not, the sender retransmits.
    nft(f"add table inet {NFT_TABLE}\n"
        f"add chain inet {NFT_TABLE} input {{ type filter hook input priority 0; }}\n"
        f"add rule inet {NFT_TABLE} input tcp dport {port} "
        f"tcp flags & (syn | fin | rst) == 0 "
        f"ip length > 200 numgen inc mod 7 == 3 drop\n")
    try:
        lst = listener(socket.AF_INET, "127.0.0.1", port)
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(20)
        # One segment per write (the first ten at least, the initial window): the
        # fourth is dropped whatever the timing.
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.connect(("127.0.0.1", port))
        s, _ = lst.accept()
        s.settimeout(20)
        lst.close()
        data = b"d" * 40000
        for i in range(0, len(data), 1000):
            c.sendall(data[i:i + 1000])
        c.shutdown(socket.SHUT_WR)
        got = 0
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += len(b)
        if got != len(data):
            die(f"lossy: sent {len(data)} got {got}")
        s.close()
        expect_eof(c)
        c.close()
    finally:
        nft(f"delete table inet {NFT_TABLE}\n")


def normal(a):
    v4 = listener(socket.AF_INET, "127.0.0.1", a.port)
    v6 = listener(socket.AF_INET6, "::1", a.port + 1)
    clean = 0
    for i in range(a.short):
        if i % 2 == 0:
            exchange(v4, socket.AF_INET, ("127.0.0.1", a.port), server_closes=i % 4 == 2)
        else:
            exchange(v6, socket.AF_INET6, ("::1", a.port + 1), server_closes=i % 4 == 3)
        clean += 1
    reuse_port = a.port + 10
    for _ in range(a.reuse):
        exchange(v4, socket.AF_INET, ("127.0.0.1", a.port), server_closes=True,
                 bind=("127.0.0.1", reuse_port))
        clean += 1
    linger_reset(v4, socket.AF_INET, ("127.0.0.1", a.port))
    zw = zero_window(a.port + 3)
    clean += 1
    if a.lossy:
        lossy(a.port + 2)
        clean += 1
    conns = a.short + a.reuse + 1 + 1 + (1 if a.lossy else 0)
    print(json.dumps(dict(done=True, clean=clean, reset=1, zero_window=zw > 0,
                          zero_window_bytes=zw, lossy=a.lossy, connections=conns,
                          reuse_port=reuse_port)), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="scenario", required=True)
    p = sub.add_parser("normal")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--short", type=int, default=40)
    p.add_argument("--reuse", type=int, default=3)
    p.add_argument("--lossy", action="store_true")
    a = ap.parse_args()
    refuse_host_netns(die)
    {"normal": normal}[a.scenario](a)


if __name__ == "__main__":
    main()
