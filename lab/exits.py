"""Print which exit requests from lab hosts left by (the `make demo` table).

For every row of lab_demo in inventories/lab/hosts.yml, run curl on the row's
host against http://NAME/ over IPv4 and IPv6. The lab's echo service answers
with the source address it saw; the address is mapped to an exit label
through the lab_exit of the routers, the VPN endpoint, the provider and the
gateway. Exits with status 1 if a request failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventories" / "lab" / "hosts.yml"


def lab_hosts(inventory: Path) -> tuple[dict, dict]:
    """Return (all.vars, {host: host vars}) from the lab inventory."""
    data = yaml.safe_load(inventory.read_text())
    hosts: dict[str, dict] = {}

    def walk(group: dict) -> None:
        for name, hostvars in (group.get("hosts") or {}).items():
            hosts.setdefault(name, {}).update(hostvars or {})
        for child in (group.get("children") or {}).values():
            walk(child or {})

    walk(data["all"])
    return data["all"].get("vars", {}), hosts


def exit_labels(hosts: dict) -> dict[str, str]:
    """Map every egress address of the lab to its label."""
    labels = {}
    for hostvars in hosts.values():
        lab_exit = hostvars.get("lab_exit")
        if lab_exit:
            labels[lab_exit["ipv4"]] = lab_exit["label"]
            labels[lab_exit["ipv6"]] = lab_exit["label"]
    return labels


def ask(container: str, name: str, family: int) -> tuple[bool, str]:
    """Fetch http://NAME/ from a lab host; return (ok, echoed address or error)."""
    cmd = ["podman", "exec", container, "curl", f"-{family}", "--silent", "--show-error"]
    cmd += ["--fail", "--max-time", "5", f"http://{name}/"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return False, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return True, proc.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, default=INVENTORY)
    args = parser.parse_args()
    lab_vars, hosts = lab_hosts(args.inventory)
    labels = exit_labels(hosts)
    rows = [("NAME", "FROM HOST", "IP", "EXIT ADDRESS", "EXIT")]
    failed = False
    for row in lab_vars.get("lab_demo", []):
        for family in (4, 6):
            ok, answer = ask(hosts[row["host"]]["ansible_host"], row["name"], family)
            failed |= not ok
            label = labels.get(answer, "unknown") if ok else "FAILED"
            rows.append((row["name"], row["host"], f"v{family}", answer, label))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
