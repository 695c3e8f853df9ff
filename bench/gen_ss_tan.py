#!/usr/bin/env python3
"""Writes a realistic `ss -tan` of N sockets (default 1,000,000) in iproute2 6.x's
exact output format, for bench/offline.sh.

The format is ss's when its output is not a terminal (`render_calc_width` "compact
output"): every column is as wide as its widest field, header included; Recv-Q,
Send-Q and the ports are left-aligned, the addresses (with their ':') right-aligned;
one blank before each column but the ports and Process; the empty Process column is
padded too. `--check FILE` re-renders a real `ss -tan` capture from its own fields
with the same code and fails unless every byte matches (bench/offline.sh runs it on
the real captures in crates/ingest/tests/fixtures/offline before generating).

The sockets are a reverse proxy's during incident 1 (shared/incidents.md): listeners
first (ss walks the listening hash first), then, in random order as the established
hash gives them, client connections to :443, connections to 20 backends, TIME-WAIT
towards the backends, a LAST-ACK pile on one listener, FIN-WAIT-1/2, SYN-RECV, a few
CLOSE-WAIT; 5% of the clients are IPv4-mapped IPv6 (`[::ffff:a.b.c.d]`).
"""

import argparse
import random
import sys

HEADER = ("State", "Recv-Q", "Send-Q", "Local Address:", "Port", "Peer Address:", "Port", "Process")


def render(rows):
    """ss's lines for rows of (state, rq, wq, laddr, lport, raddr, rport), header first."""
    fields = [HEADER] + [
        (s, str(rq), str(wq), la + ":", str(lp), ra + ":", str(rp), "") for s, rq, wq, la, lp, ra, rp in rows
    ]
    w = [max(len(f[i]) for f in fields) for i in range(8)]
    out = []
    for n, f in enumerate(fields):
        proc = f[7] if n == 0 else f[7].ljust(w[7])
        out.append(
            f"{f[0]:<{w[0]}} {f[1]:<{w[1]}} {f[2]:<{w[2]}} {f[3]:>{w[3]}}{f[4]:<{w[4]}}"
            f" {f[5]:>{w[5]}}{f[6]:<{w[6]}}{proc}\n"
        )
    return out


def split_ep(t):
    a, p = t.rsplit(":", 1)
    return a, p


def check(path):
    """Re-renders a real capture from its fields; True when byte-identical."""
    with open(path) as f:
        real = f.readlines()
    rows = []
    for line in real[1:]:
        s, rq, wq, l, r = line.split()[:5]
        la, lp = split_ep(l)
        ra, rp = split_ep(r)
        rows.append((s, rq, wq, la, lp, ra, rp))
    mine = render(rows)
    for i, (a, b) in enumerate(zip(real, mine)):
        if a != b:
            sys.stderr.write(f"{path}:{i + 1}: differs\n  real: {a!r}\n  mine: {b!r}\n")
            return False
    return len(real) == len(mine)


def generate(n, seed):
    rnd = random.Random(seed)
    me = "10.0.0.38"
    listeners = [(me, p) for p in (80, 443, 8443, 51892, 9100)] + [("0.0.0.0", 22), ("127.0.0.1", 25)]
    rows = [("LISTEN", rnd.choice((0, 0, 0, 3)), 4096, a, p, "0.0.0.0", "*") for a, p in listeners]
    backends = [f"10.0.1.{i}" for i in range(1, 21)]

    def client():
        a = f"172.{rnd.randint(16, 31)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
        return f"[::ffff:{a}]" if rnd.random() < 0.05 else a

    def eph():
        return rnd.randint(32768, 60999)

    left = n - len(rows)
    # Shares as in incident 1 (LAST-ACK 67128, FIN-WAIT-2 11712, FIN-WAIT-1 12317,
    # CLOSE-WAIT 25, TIME-WAIT 1410 of ss -ant) on a proxy with far more connections.
    plan = [
        ("LAST-ACK", 0.067), ("FIN-WAIT-1", 0.012), ("FIN-WAIT-2", 0.012), ("SYN-RECV", 0.009),
        ("TIME-WAIT", 0.20), ("CLOSE-WAIT", 0.000025), ("SYN-SENT", 0.0005),
    ]
    counts = {s: int(left * share) for s, share in plan}
    counts["ESTAB"] = left - sum(counts.values())
    body = []
    for state, k in counts.items():
        for _ in range(k):
            if state == "ESTAB":
                if rnd.random() < 0.6:
                    row = (state, 0, rnd.choice((0, 0, 0, 517)), me, 443, client(), eph())
                else:
                    row = (state, rnd.choice((0, 0, 1448)), 0, me, eph(), rnd.choice(backends), 8080)
            elif state in ("TIME-WAIT", "SYN-SENT"):
                row = (state, 0, 0 if state == "TIME-WAIT" else 1, me, eph(), rnd.choice(backends), 8080)
            elif state == "LAST-ACK":
                port = 51892 if rnd.random() < 0.926 else 443
                row = (state, 0, 1, me, port, client(), eph())
            elif state == "SYN-RECV":
                row = (state, 0, 0, me, 443, client(), eph())
            else:
                row = (state, 0, 1 if state == "FIN-WAIT-1" else 0, me, 443, client(), eph())
            body.append(row)
    rnd.shuffle(body)
    return rows + body


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sockets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="-")
    ap.add_argument("--check", nargs="+", metavar="FILE", help="verify the format against real captures")
    a = ap.parse_args()
    if a.check:
        sys.exit(0 if all(check(p) for p in a.check) else 1)
    lines = render(generate(a.sockets, a.seed))
    f = sys.stdout if a.out == "-" else open(a.out, "w")
    f.writelines(lines)
    f.close()


if __name__ == "__main__":
    main()
