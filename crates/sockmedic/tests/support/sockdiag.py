#!/usr/bin/env python3
"""A raw NETLINK_SOCK_DIAG dump of TCP sockets, for cross-checking sockmedic where `ss`
cannot (iproute2 older than 6.8 has no `state bound-inactive`).

Usage: sockdiag.py STATE_NUMBER...   (kernel numbers; 13 = BOUND_INACTIVE, 6.8+)
Dumps AF_INET and AF_INET6 sockets of the namespace it runs in, asking for the given
states, and prints one JSON line: {"sockets": [{"family", "state", "local", "remote",
"inode", "uid"}], "error": null | "text"}. Run it with `ip netns exec`.
"""

import json
import socket
import struct
import sys

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3


def fmt(family, addr, port):
    if family == socket.AF_INET:
        return f"{socket.inet_ntop(family, addr[:4])}:{port}"
    return f"[{socket.inet_ntop(family, addr)}]:{port}"


def dump(family, mask, seq):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    try:
        s.bind((0, 0))
        # inet_diag_req_v2: family, protocol, ext, pad, states, inet_diag_sockid
        req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, mask) + bytes(48)
        hdr = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY,
                          NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        s.sendto(hdr + req, (0, 0))
        out = []
        while True:
            data = s.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, typ, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
                if ln < 16:
                    raise OSError("short netlink message")
                if typ == NLMSG_DONE:
                    return out
                if typ == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, off + 16)
                    if err == 0:
                        return out
                    raise OSError(-err, "sock_diag dump failed")
                body = data[off + 16: off + ln]
                fam, state, timer, _retrans = struct.unpack_from("=BBBB", body, 0)
                sport, dport = struct.unpack_from(">HH", body, 4)
                src = body[8:24]
                dst = body[24:40]
                uid, inode = struct.unpack_from("=II", body, 64)
                out.append(dict(family="v4" if fam == socket.AF_INET else "v6",
                                state=state, local=fmt(fam, src, sport),
                                remote=fmt(fam, dst, dport), inode=inode, uid=uid,
                                timer=timer))
                off += (ln + 3) & ~3
    finally:
        s.close()


def main():
    mask = 0
    for a in sys.argv[1:]:
        mask |= 1 << int(a)
    res = dict(sockets=[], error=None)
    try:
        for i, fam in enumerate((socket.AF_INET, socket.AF_INET6)):
            res["sockets"] += dump(fam, mask, i + 1)
    except OSError as e:
        res["error"] = str(e)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
