"""nft_set at 100,000 elements against `nft -f` loading the same set, measured in one run.

Prints seconds and the ratio to the baseline for: a first load (hash and interval
set) and an idempotent re-run. Run as root: `make bench` (or python benchmarks/bench_nft_set.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".cache" / "collections"
N = int(os.environ.get("BENCH_N", "100000"))


def ns_run(ns, *cmd, data=None):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], input=data, capture_output=True, text=True, check=True)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_module(args):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, fh)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "ansible_collections.splitroute.vpn.plugins.modules.nft_set", fh.name],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)),
            check=False,
        )
    finally:
        os.unlink(fh.name)
    result = json.loads(proc.stdout)
    if result.get("failed"):
        raise SystemExit("module failed: %s" % result["msg"])
    return result


def main():
    base = ipaddress.ip_address("10.0.0.0")
    elements = [str(base + 3 * i) for i in range(N)]
    ns = "srbench-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    rows = []
    try:
        for flags in ([], ["interval"]):
            kind = "interval" if flags else "hash"
            flag_text = "    flags interval\n" if flags else ""
            text = "table inet bl {\n  set s {\n    type ipv4_addr\n%s    elements = { %s }\n  }\n}\n" % (
                flag_text,
                ",\n".join(elements),
            )
            baseline = timed(lambda t=text: ns_run(ns, "nft", "-f", "-", data=t))
            ns_run(ns, "nft", "delete", "table", "inet", "bl")
            args = {
                "netns": ns,
                "table": "bm",
                "name": "s",
                "type": "ipv4_addr",
                "flags": flags,
                "create_table": True,
                "elements": elements,
            }
            first = timed(lambda a=args: run_module(a))
            listing = timed(lambda: ns_run(ns, "nft", "-j", "list", "set", "inet", "bm", "s"))
            again = timed(lambda a=args: run_module(a))
            ns_run(ns, "nft", "delete", "table", "inet", "bm")
            rows.append((kind, baseline, first, listing, again))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    print("nft_set, %d elements (seconds; ratio = module / `nft -f` baseline, same run)" % N)
    print("idempotent run: ratio against `nft -j list set` of the same set, the read it cannot avoid")
    print("%-9s %8s %8s %7s %14s %10s %7s" % ("set", "nft -f", "module", "ratio", "nft -j list", "re-run", "ratio"))
    for kind, baseline, first, listing, again in rows:
        print(
            "%-9s %8.2f %8.2f %6.2fx %14.2f %10.2f %6.2fx"
            % (kind, baseline, first, first / baseline, listing, again, again / listing)
        )


if __name__ == "__main__":
    main()
