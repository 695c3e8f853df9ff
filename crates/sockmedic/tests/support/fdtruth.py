#!/usr/bin/env python3
"""What the kernel says a process holds, read from the outside, for sockmedic's tests.

Usage: fdtruth.py PID...   Prints one JSON line: {"PID": {"fds": n, "sockets":
[{"fd", "inode", "proto"}]}, ...}; a process that is gone is left out. `proto` is the
`system.sockprotoname` xattr of /proc/PID/fd/FD ("TCP", "TCPv6", "UDP", "UNIX", ...),
as `ls -l /proc/PID/fd` plus getfattr would show it.
"""

import json
import os
import sys


def main():
    out = {}
    for pid in sys.argv[1:]:
        base = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(base)
        except OSError:
            continue
        socks = []
        for fd in fds:
            path = f"{base}/{fd}"
            try:
                link = os.readlink(path)
            except OSError:
                continue
            if not link.startswith("socket:["):
                continue
            try:
                proto = os.getxattr(path, "system.sockprotoname").rstrip(b"\0").decode()
            except OSError as e:
                proto = f"? {e}"
            socks.append(dict(fd=int(fd), inode=int(link[8:-1]), proto=proto))
        out[pid] = dict(fds=len(fds), sockets=socks)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
