"""How fast splitroute.vpn.dnsmasq_nftset compiles and validates large domain lists.

Prints, for 1,000 / 10,000 / 100,000 domains:
  baseline   writing the same lines with a trivial loop (no validation), same run
  compile    normalise + validate + render (module_utils._dnsmasq.compile_config)
  ratio      compile / baseline
  --test     dnsmasq --test on the compiled file
  module     the whole module as Ansible runs it (subprocess, JSON args, fresh file), check mode off

Run: .venv/bin/python benchmarks/bench_dnsmasq_nftset.py  (needs dnsmasq; no root needed).
Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".cache" / "collections"
sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.splitroute.vpn.plugins.module_utils import _dnsmasq as dm  # noqa: E402

SIZES = (1000, 10000, 100000)
SETS = [
    {"version": 4, "family": "inet", "table": "splitroute", "name": "wg0_v4"},
    {"version": 6, "family": "inet", "table": "splitroute", "name": "wg0_v6"},
]
SPEC = "4#inet#splitroute#wg0_v4,6#inet#splitroute#wg0_v6"


def make_domains(count, seed=7):
    """Realistic mix: mostly lowercase ASCII, some upper case / trailing dots, 1% Unicode (IDNA)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    tlds = ["com", "net", "org", "example", "de", "ru", "io"]
    out = []
    for i in range(count):
        label = "".join(rng.choice(letters) for _attempt in range(rng.randint(4, 14)))
        name = "%s%d.%s" % (label, i, rng.choice(tlds))
        if i % 10 == 0:
            name = "www." + name.upper() + "."
        elif i % 100 == 1:
            name = "bücher%d.example" % i
        out.append(name)
    return out


def best(func, repeat):
    times = []
    result = None
    for _attempt in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def baseline(domains, path):
    """The same number of lines, no validation: the floor for any implementation in Python."""
    with open(path, "w") as fh:
        fh.write("# header\n")
        for domain in domains:
            fh.write("nftset=/%s/%s\nserver=/%s/10.8.0.1\n" % (domain, SPEC, domain))


def compile_and_write(domains, path):
    compiled = dm.compile_config([{"name": "wg0", "domains": domains, "sets": SETS, "servers": ["10.8.0.1"]}])
    with open(path, "w") as fh:
        fh.write(compiled.content)
    return compiled


def dnsmasq_test(path):
    proc = subprocess.run(["dnsmasq", "--test", "--conf-file=%s" % path], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("dnsmasq --test failed: %s" % proc.stderr)


def module_run(domains, directory):
    path = os.path.join(directory, "module.conf")
    if os.path.exists(path):
        os.unlink(path)
    args = {
        "ANSIBLE_MODULE_ARGS": {
            "path": path,
            "groups": [{"name": "wg0", "domains": domains, "sets": SETS, "servers": ["10.8.0.1"]}],
        }
    }
    args_file = os.path.join(directory, "args.json")
    with open(args_file, "w") as fh:
        json.dump(args, fh)
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run(
        [sys.executable, "-m", "ansible_collections.splitroute.vpn.plugins.modules.dnsmasq_nftset", args_file],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    result = json.loads(proc.stdout)
    if result.get("failed") or not result.get("changed"):
        raise SystemExit("module run failed: %s" % result.get("msg"))


def main():
    print("dnsmasq_nftset benchmark (flat layout, 2 sets + 1 server per domain; best of 3, module once)")
    print(
        "%9s %11s %11s %7s %9s %11s %13s"
        % ("domains", "baseline s", "compile s", "ratio", "--test s", "module s", "compile us/d")
    )
    with tempfile.TemporaryDirectory(prefix="bench-dnsmasq-") as directory:
        base_path = os.path.join(directory, "baseline.conf")
        conf_path = os.path.join(directory, "compiled.conf")
        for size in SIZES:
            domains = make_domains(size)
            base_t, _base_out = best(functools.partial(baseline, domains, base_path), 3)
            comp_t, compiled = best(functools.partial(compile_and_write, domains, conf_path), 3)
            test_t, _test_out = best(functools.partial(dnsmasq_test, conf_path), 3)
            start = time.perf_counter()
            module_run(domains, directory)
            module_t = time.perf_counter() - start
            assert len(compiled.domains) == size
            print(
                "%9d %11.3f %11.3f %6.1fx %9.3f %11.3f %13.2f"
                % (size, base_t, comp_t, comp_t / base_t, test_t, module_t, comp_t / size * 1e6)
            )


if __name__ == "__main__":
    main()
