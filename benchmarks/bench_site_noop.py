"""A no-op re-run of site.yml on the lab against a facts-only play of the same hosts.

Issue 12's benchmark: a second `ansible-playbook playbooks/site.yml` on a converged lab
changes nothing, and should cost at most 15 times a play that only gathers facts on the
same hosts (the gateway and the two clients), measured here in one run, each BENCH_RUNS
times (default 3), median. The lab is brought up and converged first when it is not
(`make demo` state), which takes a few minutes on a fresh machine. Run as root: `make bench`.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventories" / "lab" / "hosts.yml"
SITE = ROOT / "playbooks" / "site.yml"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
HOSTS = "gateways:clients"
TARGET = 15.0

FACTS = f"""
- name: Facts only, the baseline
  hosts: {HOSTS}
  gather_facts: true
  tasks: []
"""


def env():
    # the default output, as a user sees it (the JSON callback alone costs a no-op site.yml
    # about a third more here)
    return dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_CONNECTION_PLUGINS=str(ROOT / "lab" / "plugins" / "connection"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache" / "collections"),
    )


RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s", re.MULTILINE)


def playbook(path, *args):
    """(seconds, changed tasks) of one ansible-playbook run against the lab; exits on failure."""
    start = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(INVENTORY), str(path), *args],
        capture_output=True,
        text=True,
        env=env(),
        cwd=ROOT,
        check=False,
    )
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit("bench: %s failed (status %d):\n%s" % (path, proc.returncode, (proc.stdout + proc.stderr)[-3000:]))
    recap = RECAP.findall(proc.stdout)
    if not recap:
        sys.exit("bench: no PLAY RECAP in the output of %s:\n%s" % (path, proc.stdout[-3000:]))
    return seconds, sum(int(changed) for _host, changed in recap)


def main():
    subprocess.run(["bash", "lab/lab.sh", "up"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    seconds, changed = playbook(SITE)
    print("converge (site.yml, to start from the demo state): %.1f s, %d changed" % (seconds, changed))
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=ROOT / "playbooks") as facts:
        facts.write(FACTS)
        facts.flush()
        base, noop = [], []
        for _run in range(RUNS):
            base.append(playbook(facts.name)[0])
            seconds, changed = playbook(SITE)
            if changed:
                sys.exit("bench: the re-run of site.yml changed %d task(s): not a no-op" % changed)
            noop.append(seconds)
    b, n = statistics.median(base), statistics.median(noop)
    print("facts-only play (%s), median of %d: %.1f s" % (HOSTS, RUNS, b))
    print("no-op site.yml, median of %d:          %.1f s" % (RUNS, n))
    print("ratio: %.1fx (target <= %.0fx)" % (n / b, TARGET))


if __name__ == "__main__":
    main()
