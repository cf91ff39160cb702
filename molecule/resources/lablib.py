"""Fixtures for tests that run against the lab (inventories/lab/hosts.yml).

`lab` gives testinfra hosts by inventory name (entered with nsenter, as the lab's
Ansible connection does: lab/nsenter.py), the exit
labels, and helpers to ask the echo service and to capture on an interface.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import testinfra
import testinfra.backend.base
import testinfra.host
import yaml

INVENTORY = Path(__file__).resolve().parents[2] / "inventories" / "lab" / "hosts.yml"
sys.path.insert(0, str(INVENTORY.parents[2] / "lab"))

import exits  # noqa: E402  (lab/exits.py: the demo table's exit labels)
import nsenter  # noqa: E402  (lab/nsenter.py: how commands enter a lab host)


class NsenterBackend(testinfra.backend.base.BaseBackend):
    """Testinfra backend running commands in a lab host with nsenter (lab/nsenter.py)."""

    NAME = "srlab_nsenter"

    def run(self, command: str, *args: str, **kwargs: Any) -> testinfra.backend.base.CommandResult:
        cmd = self.get_command(command, *args)
        proc = nsenter.run(self.hostname, ["/bin/sh", "-c", cmd])
        return self.result(proc.returncode, self.encode(cmd), proc.stdout, proc.stderr)


class Lab:
    """The lab as the inventory describes it."""

    def __init__(self, inventory: Path) -> None:
        data = yaml.safe_load(inventory.read_text())
        self.vars: dict[str, Any] = data["all"].get("vars", {})
        self.hostvars: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[str]] = {}
        self._walk("all", data["all"])
        self._hosts: dict[str, Any] = {}

    def _walk(self, name: str, group: dict[str, Any]) -> list[str]:
        members = []
        for host, hostvars in (group.get("hosts") or {}).items():
            self.hostvars.setdefault(host, {}).update(hostvars or {})
            members.append(host)
        for child, sub in (group.get("children") or {}).items():
            members += self._walk(child, sub or {})
        self.groups[name] = members
        return members

    def host(self, name: str) -> Any:
        """Testinfra host for a lab host (nsenter into its container)."""
        if name not in self._hosts:
            self._hosts[name] = testinfra.host.Host(NsenterBackend(self.hostvars[name]["ansible_host"]))
        return self._hosts[name]

    def one(self, group: str) -> str:
        """The first host of a group."""
        return self.groups[group][0]

    def suite(self, name: str) -> str:
        """The Debian suite a lab host was created with: its lab_suite, or SRLAB_SUITES
        (HOST=SUITE,...) as lab/playbooks/create.yml reads it."""
        overrides = dict(item.split("=", 1) for item in os.environ.get("SRLAB_SUITES", "").split(",") if "=" in item)
        return overrides.get(name, self.hostvars[name].get("lab_suite", self.vars.get("lab_suite", "")))

    def exit_of(self, name: str) -> dict[str, str]:
        """Where a host's direct traffic leaves: its own exit or its router's."""
        hostvars = self.hostvars[name]
        if "lab_exit" in hostvars:
            return hostvars["lab_exit"]
        gateway = hostvars["lab_default_route"]["ipv4"]
        for other, othervars in self.hostvars.items():
            if any(nic["ipv4"] == gateway for nic in othervars.get("lab_nics", [])):
                return self.exit_of(other)
        raise LookupError(f"no exit for {name}")

    def exit_labels(self) -> dict[str, str]:
        """Every egress address of the lab mapped to its label (lab_exit and lab_exits), as
        the demo table reads them (lab/exits.py)."""
        return exits.exit_labels(self.hostvars)

    def wan_address(self, name: str, family: int) -> str:
        """A host's address on the wan network."""
        nic = next(n for n in self.hostvars[name]["lab_nics"] if n["network"] == "wan")
        return nic[f"ipv{family}"]

    def echo(self, name: str, url_host: str, family: int) -> str:
        """Ask the echo service at url_host from a lab host; return the address it saw."""
        target = f"[{url_host}]" if ":" in url_host else url_host
        result = self.host(name).run(f"curl -{family} --silent --show-error --fail --max-time 5 http://{target}/")
        assert result.rc == 0, f"{name}: curl -{family} http://{target}/ failed: {result.stderr}"
        return result.stdout.strip()

    @contextlib.contextmanager
    def capture(self, name: str, interface: str, packets: list[str]) -> Iterator[None]:
        """Capture on a host's interface during the block; fill `packets` with tcpdump lines.

        tcpdump runs as a transient systemd unit on the host, so it outlives
        the command that starts it. ARP and ICMPv6 (neighbour discovery)
        are left out.
        """
        host = self.host(name)
        unit = f"srlab-capture-{uuid.uuid4().hex[:8]}"
        pcap = f"/run/{unit}.pcap"
        # --immediate-mode: otherwise libpcap holds packets in its ring until a
        # block fills, and tcpdump stopped after the request writes none.
        tcpdump = f"tcpdump -i {interface} -nn --immediate-mode -U -w {pcap} 'not arp and not icmp6'"
        host.check_output(f"systemd-run --quiet --collect --unit={unit} {tcpdump}")
        try:
            for _attempt in range(50):
                if host.run(f"test -s {pcap}").rc == 0:
                    break
                time.sleep(0.1)
            else:
                pytest.fail(f"tcpdump did not start on {name}: {host.run(f'journalctl -u {unit}').stdout}")
            yield
            time.sleep(0.5)
        finally:
            host.run(f"systemctl stop {unit}")
        packets.extend(host.check_output(f"tcpdump -nn -r {pcap} 2>/dev/null").splitlines())
        host.run(f"rm -f {pcap}")


@pytest.fixture(scope="session")
def lab() -> Lab:
    """The running lab."""
    return Lab(INVENTORY)


class Packet(NamedTuple):
    """One line of `tcpdump -nn` output."""

    src: str
    sport: int | None
    dst: str
    dport: int | None
    info: str


PACKET_LINE = re.compile(r"^\S+ (?P<family>IP6?) (?P<src>\S+) > (?P<dst>\S+?): (?P<info>.*)$")


def _endpoint(text: str, family: str) -> tuple[str, int | None]:
    """Split tcpdump's ADDRESS.PORT (or bare ADDRESS)."""
    dots = text.count(".")
    if (family == "IP" and dots == 4) or (family == "IP6" and dots == 1):
        address, port = text.rsplit(".", 1)
        return address, int(port)
    return text, None


def parse_packets(lines: list[str]) -> list[Packet]:
    """IPv4/IPv6 packets of tcpdump -nn output (other lines are dropped)."""
    packets = []
    for line in lines:
        match = PACKET_LINE.match(line)
        if match:
            src, sport = _endpoint(match["src"], match["family"])
            dst, dport = _endpoint(match["dst"], match["family"])
            packets.append(Packet(src, sport, dst, dport, match["info"]))
    return packets


def in_network(address: str, network: str) -> bool:
    """Whether an address lies in a network."""
    return ipaddress.ip_address(address) in ipaddress.ip_network(network)


def bare_inventory() -> Path:
    """A copy of the lab's hosts.yml alone, without the group_vars/ and host_vars/
    next to it (those configure playbooks/site.yml's chain): what molecule's own
    inventory for the client and gateway scenarios holds."""
    directory = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY") or "/tmp") / "srlab-bare-inventory"
    directory.mkdir(parents=True, exist_ok=True)
    copy = directory / "hosts.yml"
    copy.write_text(INVENTORY.read_text())
    return copy


def run_playbook(
    playbook: Path, *extra: dict, check: bool = False, limit: str | None = None, inventory: Path | None = None
) -> tuple[int, dict]:
    """Run PLAYBOOK against the lab with extra vars; return (exit status, JSON result).

    The inventory is the lab's hosts.yml without the site chain's group_vars and
    host_vars unless INVENTORY is given (the site scenario passes the real one).
    """
    cmd = ["ansible-playbook", "-i", str(inventory or bare_inventory()), str(playbook)]
    if limit:
        cmd += ["--limit", limit]
    for item in extra:
        cmd += ["-e", json.dumps(item)]
    if check:
        cmd += ["--check", "--diff"]
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=INVENTORY.parents[2], check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("ansible-playbook printed no JSON:\n%s\n%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc.returncode, out


def failures(out: dict) -> list[str]:
    """The messages of every failed task result."""
    return [
        str(res.get("msg"))
        for play in out["plays"]
        for task in play["tasks"]
        for res in task["hosts"].values()
        if res.get("failed")
    ]


def changed_tasks(out: dict, host: str) -> list[str]:
    """The names of the tasks that changed HOST."""
    return [
        task["task"]["name"]
        for play in out["plays"]
        for task in play["tasks"]
        if task["hosts"].get(host, {}).get("changed")
    ]
