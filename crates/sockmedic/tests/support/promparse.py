#!/usr/bin/python3
"""Parses a Prometheus text exposition (format 0.0.4) from stdin with the Prometheus
project's own Python client (`prometheus_client.parser`, Debian's
python3-prometheus-client) and prints its samples as one JSON array:
  [{"family", "type", "name", "labels": {..}, "value"}, ...]
Exit 2 with the parser's error on stderr when the text does not parse
(crates/sockmedic/tests/serve.rs)."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    out = []
    try:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                v = s.value
                out.append({
                    "family": fam.name,
                    "type": fam.type,
                    "name": s.name,
                    "labels": s.labels,
                    "value": v if math.isfinite(v) else str(v),
                })
    except Exception as e:  # the parser raises ValueError and friends
        print(f"promparse: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
