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
WG_IFACES = LAB.hostvars[ENDPOINT]["lab_wireguard"]


def _exits(name: str) -> list[dict]:
    """A host's egress addresses: lab_exit and the entries of lab_exits."""
    hostvars = LAB.hostvars[name]
    return ([hostvars["lab_exit"]] if "lab_exit" in hostvars else []) + list(hostvars.get("lab_exits") or [])


EXITS = {e["label"]: e for h in LAB.groups["lab"] for e in _exits(h)}
LABELS = {e[f"ipv{f}"]: label for label, e in EXITS.items() for f in FAMILIES}


def _wg_target(index: int, family: int) -> str:
    """An echo address the WireGuard probe reaches through the endpoint's interface INDEX.

    The first interface carries the probe's full tunnel (any address); a further one
    only the routes it lists for the probe.
    """
    if index == 0:
        return ECHO[0][f"ipv{family}"]
    routes = WG_IFACES[index]["probes"][WG_PROBE]["routes"]
    net = next(ipaddress.ip_network(r) for r in routes if ipaddress.ip_network(r).version == family)
    return str(net.network_address)


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
    """Every egress (lab_exit and lab_exits) has its own public address, so an address names one exit."""
    exits = [e for h in LAB.groups["lab"] for e in _exits(h)]
    addresses = [e["ipv4"] for e in exits] + [e["ipv6"] for e in exits]
    assert len(set(addresses)) == len(addresses)
    assert len({e["label"] for e in exits}) == len(exits)
    # every WireGuard interface of the endpoint leaves by an exit of its own host
    assert len({i["exit"] for i in WG_IFACES}) == len(WG_IFACES)
    assert {i["exit"] for i in WG_IFACES} <= {e["label"] for e in _exits(ENDPOINT)}


@pytest.mark.parametrize("egress", [e for h in LAB.groups["lab"] for e in _exits(h)], ids=lambda e: e["label"])
def test_exit_labels_as_the_demo_reads_them(egress: dict) -> None:
    """lab/exits.py maps every egress address to its label, lab_exits included."""
    labels = LAB.exit_labels()
    assert labels[egress["ipv4"]] == labels[egress["ipv6"]] == egress["label"]


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
@pytest.mark.parametrize("index", range(len(WG_IFACES)), ids=[i["name"] for i in WG_IFACES])
def test_wireguard_exit(index: int, family: int) -> None:
    """Through each of the endpoint's WireGuard interfaces a request leaves by that interface's exit.

    The capture on the endpoint's interface shows the request came in through it,
    from the probe's tunnel address there.
    """
    iface = WG_IFACES[index]
    target = _wg_target(index, family)
    lines: list[str] = []
    with LAB.capture(ENDPOINT, iface["name"], lines):
        seen = LAB.echo(WG_PROBE, target, family)
    assert seen == EXITS[iface["exit"]][f"ipv{family}"]
    assert LABELS[seen] == iface["exit"]
    http = [p for p in parse_packets(lines) if p.dport == 80 and p.dst == target]
    assert http, f"no HTTP to {target} on {iface['name']}: {lines}"
    assert all(in_network(p.src, iface["subnet"][f"ipv{family}"]) for p in http), http


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
@pytest.mark.parametrize("iface", WG_IFACES, ids=[i["name"] for i in WG_IFACES])
def test_vpn_endpoint_resolver(iface: dict, family: int) -> None:
    """The VPN endpoint's resolver on each interface's tunnel address gives the same answers (through the tunnel)."""
    answers = _dig(WG_PROBE, iface["address"][f"ipv{family}"])
    _check_zone_answers(answers, exact_ttl=False)


# --- what crosses the uplink ----------------------------------------------


def _uplink_capture(probe: str, family: int, target: str | None = None) -> tuple[str, list]:
    """Capture on the probe's router uplink while the probe asks the echo service."""
    lines: list[str] = []
    with LAB.capture(_router_of(probe), "wan", lines):
        seen = LAB.echo(probe, target or ECHO[2][f"ipv{family}"], family)
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
    ("probe", "server", "port", "wg_index", "label"),
    [
        (WG_PROBE, ENDPOINT, WG_IFACES[0]["port"], 0, WG_IFACES[0]["exit"]),
        *[(WG_PROBE, ENDPOINT, WG_IFACES[i]["port"], i, WG_IFACES[i]["exit"]) for i in range(1, len(WG_IFACES))],
        (OVPN_PROBE, PROVIDER, LAB.hostvars[PROVIDER]["lab_openvpn"]["port"], None, "provider"),
    ],
    ids=["wireguard", *[f"wireguard-{i['name']}" for i in WG_IFACES[1:]], "openvpn"],
)
@pytest.mark.parametrize("family", FAMILIES)
def test_uplink_carries_tunneled_request_only_as_vpn_udp(
    probe: str, server: str, port: int, wg_index: int | None, label: str, family: int
) -> None:
    """A tunneled request crosses the uplink only as UDP to the VPN server's port, never as HTTP."""
    target = _wg_target(wg_index, family) if wg_index is not None else None
    seen, packets = _uplink_capture(probe, family, target)
    assert seen == EXITS[label][f"ipv{family}"]
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
