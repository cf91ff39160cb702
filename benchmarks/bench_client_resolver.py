"""Forwarded-query throughput of the client role's resolver layout against the seeds' layout.

For 0 and 100,000 listed domains (BENCH_DOMAINS to change the second figure), measured in
one run inside a throwaway network namespace, with dnsperf:

- baseline: one dnsmasq forwarding everything, no list;
- flat (the seeds): one dnsmasq with an nftset= line and a server= line per domain;
- two-tier (the role): a front dnsmasq with a servers-file (server=/domain/back) and a
  back dnsmasq with one catch-all nftset=/#/ line.

Queries go to listed names and to unlisted names separately. Caches are off, so every query
is forwarded (as in ../shared/LAB-NOTES.md). Prints queries per second and the ratio against
the baseline. Run as root: `make bench`.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".cache" / "collections"))

from ansible_collections.splitroute.vpn.plugins.module_utils._dnsmasq import compile_config  # noqa: E402

N = int(os.environ.get("BENCH_DOMAINS", "100000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
SETS = [{"version": 4, "table": "bench", "name": "v4"}, {"version": 6, "table": "bench", "name": "v6"}]
COMMON = ["no-resolv", "no-hosts", "no-poll", "bind-interfaces", "cache-size=0", "pid-file=", "user=root"]


def domains(count, seed):
    rng = random.Random(seed)
    return ["d%d-%06x.example" % (i, rng.getrandbits(24)) for i in range(count)]


class Namespace:
    def __init__(self):
        self.name = "srbench-" + uuid.uuid4().hex[:8]
        self.procs = []
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run("ip", "link", "set", "lo", "up")
        self.run("ip", "addr", "add", "127.0.0.2/8", "dev", "lo")
        self.run(
            "nft",
            "add table inet bench; add set inet bench v4 { type ipv4_addr; flags timeout; timeout 1h; }; "
            "add set inet bench v6 { type ipv6_addr; flags timeout; timeout 1h; }",
        )

    def run(self, *cmd, check=True):
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], check=check, capture_output=True, text=True)

    def dnsmasq(self, conf):
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.name, "dnsmasq", "--keep-in-foreground", "--conf-file=%s" % conf],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        return proc

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
        self.procs = []

    def close(self):
        self.stop()
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    return path


def wait_port(ns, port):
    for _attempt in range(100):
        if (
            ns.run(
                "dig", "+short", "+time=1", "+tries=1", "-p", str(port), "@127.0.0.1", "probe.example", check=False
            ).returncode
            == 0
        ):
            return
        time.sleep(0.1)
    raise SystemExit("resolver on port %d did not answer" % port)


def dnsperf(ns, names, tmp):
    query_file = write(tmp / "queries.txt", ["%s A" % n for n in names])
    out = ns.run(
        "dnsperf", "-s", "127.0.0.1", "-d", str(query_file), "-l", str(SECONDS), "-c", "4", "-q", "200", "-t", "2"
    ).stdout
    match = re.search(r"Queries per second:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def layout_files(layout, listed, tmp):
    """dnsmasq configuration files for LAYOUT; returns the confs to start (upstream first)."""
    upstream = write(tmp / "upstream.conf", [*COMMON, "listen-address=127.0.0.2", "port=53", "address=/#/198.51.100.1"])
    if layout == "baseline":
        front = write(tmp / "front.conf", [*COMMON, "listen-address=127.0.0.1", "port=53", "server=127.0.0.2"])
        return [upstream, front]
    if layout == "flat":
        group = {"name": "t", "domains": listed, "sets": SETS, "servers": ["127.0.0.2"]}
        body = compile_config([group], "flat").content if listed else ""
        write(tmp / "flat-list.conf", [body])
        front = write(
            tmp / "front.conf",
            [
                *COMMON,
                "listen-address=127.0.0.1",
                "port=53",
                "server=127.0.0.2",
                "conf-file=%s" % (tmp / "flat-list.conf"),
            ],
        )
        return [upstream, front]
    group = {"name": "t", "domains": listed, "sets": SETS, "servers": ["127.0.0.2"], "back_server": "127.0.0.1#5301"}
    write(tmp / "servers.conf", [compile_config([group], "front").content if listed else ""])
    write(tmp / "back-nftset.conf", [compile_config([group], "back").content])
    back = write(
        tmp / "back.conf",
        [*COMMON, "listen-address=127.0.0.1", "port=5301", "conf-file=%s" % (tmp / "back-nftset.conf")],
    )
    front = write(
        tmp / "front.conf",
        [
            *COMMON,
            "listen-address=127.0.0.1",
            "port=53",
            "server=127.0.0.2",
            "servers-file=%s" % (tmp / "servers.conf"),
        ],
    )
    return [upstream, back, front]


def main():
    if shutil.which("dnsperf") is None:
        raise SystemExit("dnsperf is not installed (apt-get install --no-install-recommends dnsperf)")
    all_listed = domains(N, 1)
    unlisted = domains(1000, 2)
    ns = Namespace()
    tmp = Path(tempfile.mkdtemp(prefix="srbench-"))
    tmp.chmod(0o755)
    rows = []
    try:
        for count in (0, N):
            listed = all_listed[:count]
            probe_listed = random.Random(3).sample(listed, min(1000, count)) if count else unlisted
            for layout in ("baseline", "flat", "two-tier"):
                if layout == "baseline" and count:
                    continue
                for conf in layout_files(layout, listed, tmp):
                    ns.dnsmasq(conf)
                wait_port(ns, 53)
                rows.append((count, layout, dnsperf(ns, probe_listed, tmp), dnsperf(ns, unlisted, tmp)))
                ns.stop()
    finally:
        ns.close()
        shutil.rmtree(tmp, ignore_errors=True)
    base_listed, base_unlisted = next((r[2], r[3]) for r in rows if r[1] == "baseline")
    print("Forwarded queries per second (dnsperf, caches off, %d s per figure); ratio to the baseline" % SECONDS)
    print("%-9s %-9s %14s %7s %16s %7s" % ("domains", "layout", "listed q/s", "ratio", "unlisted q/s", "ratio"))
    for count, layout, listed_qps, unlisted_qps in rows:
        print(
            "%-9d %-9s %14.0f %6.1f%% %16.0f %6.1f%%"
            % (
                count,
                layout,
                listed_qps,
                100 * listed_qps / base_listed,
                unlisted_qps,
                100 * unlisted_qps / base_unlisted,
            )
        )


if __name__ == "__main__":
    main()
