"""Print which exit requests from lab hosts left by (the `make demo` table).

For every row of lab_demo in inventories/lab/hosts.yml, run curl on the row's
host against http://NAME/ (over IPv4 and IPv6 unless the row says families).
The lab's echo service answers with the source address it saw; the address
is mapped to an exit label through the lab_exit of the routers, the VPN
endpoint, the provider and the gateway, and compared with the row's expect.
Exits with status 1 if a request failed or left by another exit.
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
    """Map every egress address of the lab to its label (lab_exit, or a list in lab_exits)."""
    labels = {}
    for hostvars in hosts.values():
        exits = list(hostvars.get("lab_exits") or [])
        if hostvars.get("lab_exit"):
            exits.append(hostvars["lab_exit"])
        for lab_exit in exits:
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


def measure(inventory: Path = INVENTORY) -> list[dict]:
    """Ask every lab_demo row; one dict per row and IP version.

    Keys: name, host, family, answer (echoed address or error), exit (label,
    "unknown" or "FAILED"), expect (label or None) and ok (the exit is the
    expected one; a row without expect is ok when its request succeeded).
    """
    lab_vars, hosts = lab_hosts(inventory)
    labels = exit_labels(hosts)
    results = []
    for row in lab_vars.get("lab_demo", []):
        for family in row.get("families", (4, 6)):
            ok, answer = ask(hosts[row["host"]]["ansible_host"], row["name"], family)
            label = labels.get(answer, "unknown") if ok else "FAILED"
            expect = row.get("expect")
            results.append({
                "name": row["name"], "host": row["host"], "family": family, "answer": answer,
                "exit": label, "expect": expect, "why": row.get("why", ""),
                "ok": ok and (expect is None or label == expect),
            })  # fmt: skip
    return results


def render(results: list[dict]) -> str:
    """The table `make demo` prints."""
    rows = [("NAME", "FROM HOST", "IP", "EXIT ADDRESS", "EXIT", "EXPECTED", "", "WHY")]
    for r in results:
        mark = "ok" if r["ok"] else "WRONG"
        rows.append(
            (r["name"], r["host"], f"v{r['family']}", r["answer"], r["exit"], r["expect"] or "-", mark, r["why"])
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, default=INVENTORY)
    args = parser.parse_args()
    results = measure(args.inventory)
    print(render(results))
    wrong = [r for r in results if not r["ok"]]
    if wrong:
        print(f"\n{len(wrong)} of {len(results)} requests did not leave by the expected exit")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
