"""Refuse lab subnets that would capture this machine's own traffic.

A podman network, even an internal one, puts a route for its subnet on the host. If
that subnet holds the machine's default gateway, its resolver or its package mirrors,
nothing can be downloaded while the lab is up (seen: the mirrors resolve into
203.0.113.0/24 here). `lab.sh up` runs this before creating anything.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
from pathlib import Path

import yaml

HOSTS = ("deb.debian.org", "pypi.org", "files.pythonhosted.org")


def machine_addresses():
    found = {}
    for name in HOSTS:
        try:
            for info in socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP):
                found[info[4][0]] = name
        except OSError:
            continue
    route = subprocess.run(["ip", "-j", "route", "show", "default"], capture_output=True, text=True, check=False)
    for entry in json.loads(route.stdout or "[]"):
        if entry.get("gateway"):
            found[entry["gateway"]] = "the default gateway"
    resolv = Path("/etc/resolv.conf")
    if resolv.exists():
        for line in resolv.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                found[fields[1]] = "the resolver"
    return found


def main():
    inventory = yaml.safe_load(Path(sys.argv[1]).read_text())
    networks = inventory["all"]["vars"]["lab_networks"]
    addresses = machine_addresses()
    problems = []
    for name, net in networks.items():
        for family in ("ipv4", "ipv6"):
            subnet = ipaddress.ip_network(net[family]["subnet"])
            for addr, what in addresses.items():
                try:
                    ip = ipaddress.ip_address(addr.split("%")[0])
                except ValueError:
                    continue
                if ip.version == subnet.version and ip in subnet:
                    problems.append("lab network %s (%s) contains %s, %s" % (name, subnet, addr, what))
    if problems:
        sys.exit("refusing to create the lab:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
