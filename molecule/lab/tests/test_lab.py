"""The lab works: exits, DNS and what crosses an uplink, checked with real packets.

Every expected value comes from inventories/lab/hosts.yml; every observed
value from a request made inside the lab (curl to the echo service, dig,
tcpdump on a router's uplink).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import NamedTuple

import pytest
from conftest import INVENTORY, Lab, in_network, parse_packets

LAB = Lab(INVENTORY)
FAMILIES = [4, 6]
INET = LAB.one("internet")
ROUTER = LAB.one("routers")
ENDPOINT = LAB.one("vpn_endpoints")
PROVIDER = LAB.one("providers")
WG_PROBE = next(h for h in LAB.groups["probes"] if LAB.hostvars[h]["lab_probe"]["kind"] == "wireguard")
OVPN_PROBE = next(h for h in LAB.groups["probes"] if LAB.hostvars[h]["lab_probe"]["kind"] == "openvpn")
ECHO = LAB.hostvars[INET]["lab_echo_servers"]
DNS = LAB.hostvars[INET]["lab_dns_server"]
SERVICES = LAB.hostvars[INET]["lab_service_routes"]
ZONES = LAB.hostvars[INET]["lab_zones"]


def _router_of(name: str) -> str:
    gateway = LAB.hostvars[name]["lab_default_route"]["ipv4"]
    return next(h for h in LAB.groups["routers"] if any(n["ipv4"] == gateway for n in LAB.hostvars[h]["lab_nics"]))


# --- the lab itself --------------------------------------------------------


@pytest.mark.parametrize("network", sorted(LAB.vars["lab_networks"]))
def test_network_is_internal_and_dual_stack(network: str) -> None:
    """Nothing leaves the machine: every lab network is internal, with both families."""
    name = LAB.vars["lab_prefix"] + network
    info = json.loads(subprocess.run(["podman", "network", "inspect", name], capture_output=True, check=True).stdout)
    assert info[0]["internal"] is True
    assert info[0]["ipv6_enabled"] is True
    want = LAB.vars["lab_networks"][network]
    assert {s["subnet"] for s in info[0]["subnets"]} == {want["ipv4"]["subnet"], want["ipv6"]["subnet"]}


@pytest.mark.parametrize("name", LAB.groups["lab"])
def test_host_booted(name: str) -> None:
    """systemd is PID 1 and every unit started."""
    host = LAB.host(name)
    assert host.run("systemctl is-system-running").stdout.strip() == "running", host.run("systemctl --failed").stdout
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_exits_are_distinct() -> None:
    """Every egress has its own public address, so an address names one exit."""
    exits = [LAB.hostvars[h]["lab_exit"] for h in LAB.groups["lab"] if "lab_exit" in LAB.hostvars[h]]
    addresses = [e["ipv4"] for e in exits] + [e["ipv6"] for e in exits]
    assert len(set(addresses)) == len(addresses)
    assert len({e["label"] for e in exits}) == len(exits)


# --- exits -----------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", LAB.groups["clients"] + LAB.groups["gateway_peers"] + LAB.groups["gateways"])
def test_direct_exit(name: str, family: int) -> None:
    """A role host's plain request leaves by its site router (or its own address)."""
    assert LAB.echo(name, ECHO[0][f"ipv{family}"], family) == LAB.exit_of(name)[f"ipv{family}"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("service", range(len(ECHO)))
def test_every_echo_address_answers(service: int, family: int) -> None:
    """Each public echo address answers with the caller's (NATed) address."""
    client = LAB.one("clients")
    assert LAB.echo(client, ECHO[service][f"ipv{family}"], family) == LAB.exit_of(client)[f"ipv{family}"]


@pytest.mark.parametrize("family", FAMILIES)
def test_wireguard_exit(family: int) -> None:
    """Through the hand-made WireGuard tunnel the request leaves by the endpoint's egress."""
    seen = LAB.echo(WG_PROBE, ECHO[0][f"ipv{family}"], family)
    assert seen == LAB.hostvars[ENDPOINT]["lab_exit"][f"ipv{family}"]
    assert LAB.exit_labels()[seen] == "vpn-endpoint"


@pytest.mark.parametrize("family", FAMILIES)
def test_openvpn_exit(family: int) -> None:
    """Through the hand-made OpenVPN tunnel the request leaves by the provider's egress."""
    seen = LAB.echo(OVPN_PROBE, ECHO[1][f"ipv{family}"], family)
    assert seen == LAB.hostvars[PROVIDER]["lab_exit"][f"ipv{family}"]
    assert LAB.exit_labels()[seen] == "provider"


@pytest.mark.parametrize("family", FAMILIES)
def test_names_resolve_for_requests(family: int) -> None:
    """A request by name from a role host uses the lab resolver and reaches the echo service."""
    client = LAB.one("clients")
    assert LAB.echo(client, "www.example.com", family) == LAB.exit_of(client)[f"ipv{family}"]


# --- DNS -------------------------------------------------------------------


class Record(NamedTuple):
    """One answer line of dig."""

    ttl: int
    rtype: str
    rdata: str


def _owners() -> list[str]:
    return [zone if rr["name"] == "@" else f"{rr['name']}.{zone}" for zone, rrs in ZONES.items() for rr in rrs]


def _expected(fqdn: str, rtype: str) -> set[str]:
    """Addresses a name resolves to according to the zone data (CNAMEs followed)."""
    for zone, rrs in ZONES.items():
        for rr in rrs:
            if (zone if rr["name"] == "@" else f"{rr['name']}.{zone}") == fqdn:
                if "cname" in rr:
                    return _expected(rr["cname"].rstrip("."), rtype)
                key = rtype.lower()
                return {str(ipaddress.ip_address(rr[key]))} if key in rr else set()
    return set()


def _dig(name: str, server: str) -> dict[str, list[Record]]:
    """Ask a server for A and AAAA of every name in the zones, in one dig run."""
    queries = " ".join(f"{owner} A {owner} AAAA" for owner in _owners())
    out = LAB.host(name).check_output(f"dig @{server} +noall +answer +time=1 +tries=2 {queries}")
    answers: dict[str, list[Record]] = {}
    for line in out.splitlines():
        owner, ttl, _cls, rtype, rdata = line.split(None, 4)
        answers.setdefault(owner.rstrip("."), []).append(Record(int(ttl), rtype, rdata.rstrip(".")))
    return answers


def _resolve(answers: dict[str, list[Record]], fqdn: str, rtype: str) -> set[str]:
    """Follow CNAMEs through dig's answers; return the addresses of one type."""
    name = fqdn
    for _hop in range(8):
        records = answers.get(name, [])
        cnames = [r.rdata for r in records if r.rtype == "CNAME"]
        if not cnames:
            return {str(ipaddress.ip_address(r.rdata)) for r in records if r.rtype == rtype}
        name = cnames[0]
    raise AssertionError(f"CNAME loop at {fqdn}")


def _check_zone_answers(answers: dict[str, list[Record]], exact_ttl: bool) -> None:
    """Compare dig's answers with the zone data; TTLs exactly (authoritative) or as upper bounds (cache)."""
    for owner in _owners():
        for rtype in ("A", "AAAA"):
            assert _resolve(answers, owner, rtype) == _expected(owner, rtype), f"{owner} {rtype}"
    for zone, rrs in ZONES.items():
        for rr in rrs:
            owner = zone if rr["name"] == "@" else f"{rr['name']}.{zone}"
            if "cname" in rr:
                assert rr["cname"].rstrip(".") in {r.rdata for r in answers[owner] if r.rtype == "CNAME"}, owner
            ttl = rr.get("ttl", 300)
            for record in answers.get(owner, []):
                if exact_ttl:
                    assert record.ttl == ttl, f"{owner}: {record}"
                else:
                    assert 0 <= record.ttl <= ttl, f"{owner}: {record}"


@pytest.mark.parametrize("family", FAMILIES)
def test_authoritative_dns(family: int) -> None:
    """The internet host's authoritative server answers as the zones say (A, AAAA, CNAME chain, TTL)."""
    answers = _dig(LAB.one("clients"), DNS[f"ipv{family}"])
    _check_zone_answers(answers, exact_ttl=True)
    assert _resolve(answers, "chain1.example.com", "A") == _expected("www.example.net", "A")


@pytest.mark.parametrize("family", FAMILIES)
def test_vpn_endpoint_resolver(family: int) -> None:
    """The VPN endpoint's resolver on its tunnel address gives the same answers (through the tunnel)."""
    address = LAB.hostvars[ENDPOINT]["lab_wireguard"]["address"][f"ipv{family}"]
    answers = _dig(WG_PROBE, address)
    _check_zone_answers(answers, exact_ttl=False)


# --- what crosses the uplink ----------------------------------------------


def _uplink_capture(probe: str, family: int) -> tuple[str, list]:
    """Capture on the probe's router uplink while the probe asks the echo service."""
    lines: list[str] = []
    with LAB.capture(_router_of(probe), "wan", lines):
        seen = LAB.echo(probe, ECHO[2][f"ipv{family}"], family)
    return seen, parse_packets(lines)


@pytest.mark.parametrize("family", FAMILIES)
def test_uplink_carries_direct_request_as_http(family: int) -> None:
    """Control: a direct request crosses the uplink as HTTP from the router's public address."""
    client = LAB.one("clients")
    seen, packets = _uplink_capture(client, family)
    router_exit = LAB.exit_of(client)[f"ipv{family}"]
    assert seen == router_exit
    http = [p for p in packets if p.dport == 80 and p.dst == ECHO[2][f"ipv{family}"]]
    assert http, f"no HTTP to the echo service on the uplink: {packets}"
    assert all(p.src == router_exit for p in http)


@pytest.mark.parametrize(
    ("probe", "server", "port"),
    [
        (WG_PROBE, ENDPOINT, LAB.hostvars[ENDPOINT]["lab_wireguard"]["port"]),
        (OVPN_PROBE, PROVIDER, LAB.hostvars[PROVIDER]["lab_openvpn"]["port"]),
    ],
    ids=["wireguard", "openvpn"],
)
@pytest.mark.parametrize("family", FAMILIES)
def test_uplink_carries_tunneled_request_only_as_vpn_udp(probe: str, server: str, port: int, family: int) -> None:
    """A tunneled request crosses the uplink only as UDP to the VPN server, never as HTTP."""
    seen, packets = _uplink_capture(probe, family)
    assert seen == LAB.hostvars[server]["lab_exit"][f"ipv{family}"]
    router_v4 = LAB.wan_address(_router_of(probe), 4)
    server_v4 = LAB.wan_address(server, 4)
    tunnel = [
        p
        for p in packets
        if "UDP" in p.info
        and {(p.src, p.sport), (p.dst, p.dport)} & {(server_v4, port)}
        and router_v4 in (p.src, p.dst)
    ]
    assert tunnel, f"no UDP to {server_v4}:{port} on the uplink: {packets}"
    leaked = [
        p
        for p in packets
        if 80 in (p.sport, p.dport) or any(in_network(a, SERVICES[k]) for a in (p.src, p.dst) for k in ("ipv4", "ipv6"))
    ]
    assert not leaked, f"the request crossed the uplink outside the tunnel: {leaked}"
