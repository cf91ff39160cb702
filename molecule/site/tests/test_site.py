"""playbooks/site.yml's full chain in the lab, proven with packets.

client (10.4.0.130, the gateway's provider range) and client2 (10.4.0.10, the
direct range) tunnel their listed domains to the gateway; the gateway sends the
first on to the OpenVPN provider and lets the second out by its own uplink.
Everything else leaves by the clients' routers. The rows and their expected
exits are lab_demo in inventories/lab/hosts.yml: the table `make demo` prints.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import INVENTORY, changed_tasks, failures, parse_packets, run_playbook
from lablib import exits  # lab/exits.py: the demo table

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

from prometheus_text import parse_metrics  # noqa: E402  (tests/prometheus_text.py: the strict reader)

SITE = ROOT / "playbooks" / "site.yml"
REVERT = ROOT / "playbooks" / "revert.yml"
STATUS = ROOT / "playbooks" / "status.yml"
TEXTFILE = "/var/lib/prometheus/node-exporter/splitroute.prom"  # splitroute_runtime_textfile's default
GATEWAY = "gateway"
VPN_CLIENT = "client"  # provider range
DIRECT_CLIENT = "client2"  # direct range
LISTED = "www.example.com"  # listed for every client (group_vars/clients.yml)
LISTED_ADDRESSES = {4: "198.51.100.210", 6: "2001:db8:100::10"}
PEER_ADDRESSES = {VPN_CLIENT: ("10.4.0.130", "fd10:4::1130"), DIRECT_CLIENT: ("10.4.0.10", "fd10:4::10")}
GATEWAY_RESOLVER6 = "fd10:4::1"


def site(*extra, check=False, limit=None):
    """Run playbooks/site.yml with the lab's full inventory (group_vars, host_vars)."""
    return run_playbook(SITE, *extra, check=check, limit=limit, inventory=INVENTORY)


def echo(lab, host, target, max_time=5, family=4):
    result = lab.host(host).run("curl -%d --silent --max-time %d http://%s/" % (family, max_time, target))
    return result.stdout.strip() if result.rc == 0 else None


def wait_for(lab, host, target, expected, tries=60, family=4):
    for _attempt in range(tries):
        if echo(lab, host, target, max_time=2, family=family) == expected:
            return True
        time.sleep(0.5)
    return False


@pytest.fixture(scope="module")
def labels(lab):
    return {lab.hostvars[h]["lab_exit"]["label"]: lab.hostvars[h]["lab_exit"] for h in ("gateway", "provider")}


def test_the_demo_table(lab):
    """Every row of the `make demo` table leaves by its expected exit."""
    results = exits.measure(INVENTORY)
    print(exits.render(results))
    wrong = [r for r in results if not r["ok"]]
    assert not wrong, exits.render(wrong)
    seen = {(r["host"], r["exit"]) for r in results}
    # both classes of the gateway and both clients' direct paths are in the table
    assert {("client", "provider"), ("client2", "gateway")} <= seen
    assert {("client", "direct/router-a"), ("client2", "direct/router-b")} <= seen


def test_the_gateway_sees_both_clients_as_peers(lab):
    dump = lab.host(GATEWAY).check_output("wg show wg0 dump").splitlines()[1:]
    handshakes = {line.split("\t")[3]: int(line.split("\t")[4]) for line in dump}
    assert set(handshakes) == {"%s/32,%s/128" % PEER_ADDRESSES[host] for host in (VPN_CLIENT, DIRECT_CLIENT)}
    assert all(when > 0 for when in handshakes.values()), handshakes


@pytest.mark.parametrize("family", [4, 6])
def test_provider_down_fails_closed_for_the_provider_range_only(lab, labels, family):
    """OpenVPN stopped on the gateway: client's listed traffic times out, nothing of
    it leaves the gateway's uplink in clear; client2 and unlisted traffic carry on."""
    gateway = lab.host(GATEWAY)
    ip = "ipv%d" % family
    assert echo(lab, VPN_CLIENT, LISTED, family=family) == labels["provider"][ip]
    gateway.check_output("systemctl stop splitroute-gateway-openvpn@provider.service")
    try:
        packets = []
        with lab.capture(GATEWAY, "wan", packets):
            assert echo(lab, VPN_CLIENT, LISTED, max_time=3, family=family) is None
        peer = PEER_ADDRESSES[VPN_CLIENT]
        leaked = [p for p in parse_packets(packets) if p.dst == LISTED_ADDRESSES[family] or p.src in peer]
        assert not leaked, leaked
        assert echo(lab, DIRECT_CLIENT, LISTED, family=family) == labels["gateway"][ip]
        assert echo(lab, VPN_CLIENT, "www.example.org", family=family) == lab.exit_of(VPN_CLIENT)[ip]
    finally:
        gateway.check_output("systemctl start splitroute-gateway-openvpn@provider.service")
    assert wait_for(lab, VPN_CLIENT, LISTED, labels["provider"][ip], family=family)


def test_gateway_down_fails_closed_on_the_client(lab):
    """The client's tunnel to the gateway down: listed traffic is blackholed on the
    client (no packet for it on the client's LAN), unlisted traffic carries on."""
    client = lab.host(VPN_CLIENT)
    client.check_output("systemctl stop wg-quick@gw.service")
    try:
        packets = []
        with lab.capture(VPN_CLIENT, "lan", packets):
            for family in (4, 6):
                assert echo(lab, VPN_CLIENT, LISTED, max_time=3, family=family) is None
        leaked = [p for p in parse_packets(packets) if p.dst in LISTED_ADDRESSES.values()]
        assert not leaked, leaked
        assert echo(lab, VPN_CLIENT, "www.example.org") == lab.exit_of(VPN_CLIENT)["ipv4"]
    finally:
        client.check_output("systemctl start wg-quick@gw.service")
    assert wait_for(lab, VPN_CLIENT, LISTED, lab.hostvars["provider"]["lab_exit"]["ipv4"])


def test_the_gateway_resolver_answers_its_peers_over_ipv6(lab):
    """Each client asks the gateway's resolver at its IPv6 address (through the tunnel, a static
    member of the client's sets: the tunnel's dns): the
    direct class's query goes on from the gateway's uplink, the provider class's through the
    provider only (nothing of it in clear on the gateway's uplink)."""
    tag = uuid.uuid4().hex[:8]
    names = {host: "v6dns-%s-%s.example.org" % (tag, host) for host in (VPN_CLIENT, DIRECT_CLIENT)}
    packets = []
    with lab.capture(GATEWAY, "wan", packets):
        for host, name in names.items():
            # as the resolvers' user, whose DNS the client does not redirect to its own resolver
            out = lab.host(host).check_output(
                "runuser -u dnsmasq -- dig +time=3 +tries=1 -6 @%s %s A" % (GATEWAY_RESOLVER6, name)
            )
            assert "status: NXDOMAIN" in out, out  # answered by the lab's authoritative server
            assert "SERVER: %s#53" % GATEWAY_RESOLVER6 in out, out
    seen = [p for p in parse_packets(packets) if 53 in (p.sport, p.dport)]
    assert any(names[DIRECT_CLIENT] in p.info for p in seen), packets
    assert not any(names[VPN_CLIENT] in p.info for p in seen), seen


# ---------------------------------------------------------------- client2: NetworkManager + resolved
# client2 is set up as a laptop is (lab_networkmanager): NetworkManager takes its uplink by DHCP
# from router-b and gives the DNS server it learns to systemd-resolved; resolv.conf is resolved's
# stub link. The role leaves both so and sends resolved's every name to its front resolver.

STUB_LINK = "../run/systemd/resolve/stub-resolv.conf"
NM_PROFILE = "srlab-lan"
DHCP_DNS_FILE = "/etc/dnsmasq.d/srlab-dhcp-dns.conf"  # lab/playbooks/tasks/dhcp.yml


def link_dns(box):
    """The DNS servers resolved has for client2's uplink (from NetworkManager)."""
    out = box.check_output("resolvectl dns lan")
    return out.split(":", 1)[1].split() if ":" in out else []


def wait_link_dns(box, servers, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if link_dns(box) == servers:
            return True
        time.sleep(0.5)
    return False


def listed_names(tag):
    """Fresh listed names (no cache holds them) and how each is asked: every way a program on a
    resolved host asks (the stub through resolv.conf, 127.0.0.53 and 127.0.0.54 by hand, resolved's
    own API)."""
    return {
        "a-%s.example.com" % tag: "getent ahosts a-%s.example.com" % tag,
        "b-%s.example.com" % tag: "dig +time=3 +tries=1 @127.0.0.53 b-%s.example.com" % tag,
        "c-%s.example.com" % tag: "dig +time=3 +tries=1 @127.0.0.54 c-%s.example.com AAAA" % tag,
        "d-%s.cdn.example.org" % tag: "resolvectl query --cache=no d-%s.cdn.example.org" % tag,
    }


def resolve_on_the_laptop(lab, tag):
    """Ask client2 for fresh listed names and one fresh unlisted name (u-TAG.example.net), capturing
    its uplink and the gateway's; the DNS packets on the uplink and the text of the gateway's."""
    box = lab.host(DIRECT_CLIENT)
    uplink, gateway_wan = [], []
    with lab.capture(GATEWAY, "wan", gateway_wan), lab.capture(DIRECT_CLIENT, "lan", uplink):
        for command in listed_names(tag).values():
            box.run(command)
        unlisted = box.run("dig +time=3 +tries=1 @127.0.0.53 u-%s.example.net" % tag)
        assert "status: NXDOMAIN" in unlisted.stdout, unlisted.stdout  # answered
    dns = [p for p in parse_packets(uplink) if 53 in (p.sport, p.dport)]
    return dns, "\n".join(gateway_wan)


def assert_listed_names_took_the_tunnel(tag, uplink_dns, gateway_text):
    """None of the listed names on client2's uplink, every one of them asked from the gateway's
    (client2 is in the direct class: the gateway's resolver asks the internet from its uplink)."""
    leaked = [p for p in uplink_dns if tag in p.info and "u-%s" % tag not in p.info]
    assert not leaked, leaked
    missing = [name for name in listed_names(tag) if name + "." not in gateway_text]
    assert not missing, (missing, gateway_text)


def unlisted_servers(tag, uplink_dns):
    """Where client2 sent its unlisted query."""
    return {p.dst for p in uplink_dns if "u-%s" % tag in p.info and p.dport == 53}


def test_the_resolved_host_keeps_its_stub_and_sends_listed_names_through_the_tunnel(lab, labels):
    """resolv.conf is still resolved's stub link and NetworkManager still gives resolved its DNS
    server; a listed name asked any way (resolv.conf, 127.0.0.53, 127.0.0.54, resolved's API) is
    resolved through the tunnel only, and the unlisted one by the DNS server DHCP gave."""
    box = lab.host(DIRECT_CLIENT)
    dhcp_dns = lab.hostvars["inet"]["lab_dns_server"]["ipv4"]
    assert box.check_output("readlink /etc/resolv.conf") == STUB_LINK
    assert link_dns(box) == [dhcp_dns]
    assert LISTED_ADDRESSES[4] in box.check_output("dig +short @127.0.0.53 %s" % LISTED)
    tag = uuid.uuid4().hex[:8]
    uplink_dns, gateway_text = resolve_on_the_laptop(lab, tag)
    assert_listed_names_took_the_tunnel(tag, uplink_dns, gateway_text)
    assert unlisted_servers(tag, uplink_dns) == {dhcp_dns}, uplink_dns
    assert echo(lab, DIRECT_CLIENT, LISTED) == labels["gateway"]["ipv4"]


def test_a_networkmanager_reconnect_changes_nothing(lab, labels):
    """nmcli connection down and up: the role's rules and blackhole stay, resolved still sends
    every name to the front, listed names still take the tunnel (and their DNS), for both
    families."""
    box = lab.host(DIRECT_CLIENT)
    before = box.check_output("ip rule show; ip -6 rule show; resolvectl dns; resolvectl domain")
    box.check_output("nmcli connection down %s && nmcli connection up %s" % (NM_PROFILE, NM_PROFILE))
    assert wait_link_dns(box, [lab.hostvars["inet"]["lab_dns_server"]["ipv4"]])
    assert box.check_output("ip rule show; ip -6 rule show; resolvectl dns; resolvectl domain") == before
    for family in (4, 6):
        assert wait_for(lab, DIRECT_CLIENT, LISTED, labels["gateway"]["ipv%d" % family], family=family)
    tag = uuid.uuid4().hex[:8]
    uplink_dns, gateway_text = resolve_on_the_laptop(lab, tag)
    assert_listed_names_took_the_tunnel(tag, uplink_dns, gateway_text)


def test_unlisted_names_follow_the_dns_server_dhcp_hands_out(lab, labels):
    """router-b hands out its own LAN resolver instead of the internet host's: at the next DHCP
    renewal (no reconnect) NetworkManager gives it to resolved, and the front resolver, which reads
    resolved's uplink list live, sends unlisted names there; listed names still take the tunnel."""
    box, router = lab.host(DIRECT_CLIENT), lab.host("router-b")
    lan_resolver = next(n["ipv4"] for n in lab.hostvars["router-b"]["lab_nics"] if n["name"] == "lan")
    router.check_output("cp %s /run/srlab-dhcp-dns.conf" % DHCP_DNS_FILE)
    router.check_output(
        "echo dhcp-option=option:dns-server,%s > %s && systemctl restart dnsmasq" % (lan_resolver, DHCP_DNS_FILE)
    )
    try:
        assert wait_link_dns(box, [lan_resolver]), link_dns(box)
        tag = uuid.uuid4().hex[:8]
        uplink_dns, gateway_text = resolve_on_the_laptop(lab, tag)
        assert unlisted_servers(tag, uplink_dns) == {lan_resolver}, uplink_dns
        assert_listed_names_took_the_tunnel(tag, uplink_dns, gateway_text)
        # and the renewal left the routing alone: listed traffic still leaves by the gateway
        for family in (4, 6):
            assert echo(lab, DIRECT_CLIENT, LISTED, family=family) == labels["gateway"]["ipv%d" % family]
    finally:
        router.check_output("mv /run/srlab-dhcp-dns.conf %s && systemctl restart dnsmasq" % DHCP_DNS_FILE)
    assert wait_link_dns(box, [lab.hostvars["inet"]["lab_dns_server"]["ipv4"]])


def test_check_mode_reports_drift_and_changes_nothing(lab):
    """A hand-made change is reported by --check --diff, left as it is, and undone by
    the next run, even one limited to that host."""
    client = lab.host(DIRECT_CLIENT)
    rules = client.check_output("ip -4 rule show")
    line = next(r for r in rules.splitlines() if "fwmark" in r)
    priority = line.split(":")[0]
    client.check_output(f"ip -4 rule del priority {priority}")
    rc, out = site(check=True)
    assert rc == 0, failures(out)
    assert changed_tasks(out, DIRECT_CLIENT), "check mode did not report the missing rule"
    assert changed_tasks(out, VPN_CLIENT) == []
    assert changed_tasks(out, GATEWAY) == []
    assert f"{priority}:" not in client.check_output("ip -4 rule show"), "check mode changed the host"
    # a run limited to the drifted host: the gateway's key is read from the gateway
    rc, out = site(limit=DIRECT_CLIENT)
    assert rc == 0, failures(out)
    assert line in client.check_output("ip -4 rule show")
    rc, out = site()
    assert rc == 0, failures(out)
    assert all(changed_tasks(out, host) == [] for host in (GATEWAY, VPN_CLIENT, DIRECT_CLIENT))


def metric(text, name, **labels):
    """The values of metric NAME whose labels include LABELS, from textfile-collector text."""
    values = []
    for line in text.splitlines():
        match = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if match and match[1] == name:
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2]))
            if all(found.get(k) == v for k, v in labels.items()):
                values.append(float(match[3]))
    return values


def test_status_reports_the_chain(lab):
    """playbooks/status.yml: the report and the textfile metrics show the tunnels up,
    with a handshake, and every blackhole armed, on the clients and the gateway."""
    textfile = "/run/splitroute-status.prom"
    rc, out = run_playbook(STATUS, {"splitroute_status_textfile": textfile}, inventory=INVENTORY)
    assert rc == 0, failures(out)
    report = json.dumps(out)
    assert "tunnel gw: up" in report
    for host in (VPN_CLIENT, DIRECT_CLIENT):
        prom = lab.host(host).check_output(f"cat {textfile}")
        assert metric(prom, "splitroute_tunnel_up", interface="gw") == [1.0], prom
        assert metric(prom, "splitroute_tunnel_last_handshake_seconds", interface="gw")[0] > 0, prom
        armed = metric(prom, "splitroute_blackhole_armed")
        assert armed and all(value == 1.0 for value in armed), prom
        # both generations of the tunnel's IPv4 set (gw_v4_a, gw_v4_b); the one flushed last may be empty
        sizes = [v for gen in ("a", "b") for v in metric(prom, "splitroute_set_elements", set="gw_v4_%s" % gen)]
        assert len(sizes) == 2 and max(sizes) >= 1, prom
    prom = lab.host(GATEWAY).check_output(f"cat {textfile}")
    assert metric(prom, "splitroute_netns_present") == [1.0], prom
    handshakes = metric(prom, "splitroute_peer_last_handshake_seconds")
    assert len(handshakes) == 2 and all(value > 0 for value in handshakes), prom
    armed = metric(prom, "splitroute_blackhole_armed")
    assert armed and all(value == 1.0 for value in armed), prom


def strict(text):
    """Series -> value of a textfile, read strictly; by name and labels (without host)."""
    return {(name, frozenset((k, v) for k, v in labels if k != "host")): value
            for (name, labels), value in parse_metrics(text).items()}  # fmt: skip


def values(samples, name):
    return {labels: value for (n, labels), value in samples.items() if n == name}


def next_textfile(box, before, timeout=30):
    """The textfile once the timer has rewritten it (a later timestamp than BEFORE's)."""
    stamp = values(strict(before), "splitroute_status_timestamp_seconds")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = box.check_output(f"cat {TEXTFILE}") + "\n"
        if values(strict(text), "splitroute_status_timestamp_seconds") != stamp:
            return text
        time.sleep(1)
    pytest.fail("the timer did not rewrite %s within %d s" % (TEXTFILE, timeout))


def first_textfile(box, timeout=30):
    """The textfile, once the timer has written it (at once when it starts)."""
    deadline = time.monotonic() + timeout
    while not box.file(TEXTFILE).exists:
        if time.monotonic() > deadline:
            pytest.fail("the timer wrote no %s within %d s" % (TEXTFILE, timeout))
        time.sleep(1)
    return box.check_output(f"cat {TEXTFILE}") + "\n"


def timer_runs(box):
    assert box.check_output("systemctl is-enabled splitroute-metrics.timer") == "enabled"
    assert box.check_output("systemctl is-active splitroute-metrics.timer") == "active"
    assert box.check_output(f"stat -c %a {TEXTFILE}") == "644"


def test_the_gateway_metrics_change_by_themselves(lab):
    """No playbook: the gateway's timer (every 5 s in the lab's inventory) rewrites the textfile, and the
    peers' handshake ages grow between two runs (the plan in /etc/splitroute/gateway.json names them)."""
    gateway = lab.host(GATEWAY)
    first = first_textfile(gateway)
    timer_runs(gateway)
    plan = json.loads(gateway.check_output("cat /etc/splitroute/gateway.json"))
    assert (plan["role"], plan["version"], plan["interface"]) == ("gateway", 1, "wg0")
    assert gateway.check_output("stat -c %a /etc/splitroute/gateway.json") == "644"
    second = next_textfile(gateway, first)
    before, after = strict(first), strict(second)
    for samples in (before, after):
        assert values(samples, "splitroute_gateway_configured") == {frozenset(): 1}
        assert values(samples, "splitroute_problems") == {frozenset(): 0}, gateway.check_output("splitroute status")
        names = {dict(labels)["name"] for labels in values(samples, "splitroute_peer_handshake_age_seconds")}
        assert names == {VPN_CLIENT, DIRECT_CLIENT}  # named from the plan's peers
        assert values(samples, "splitroute_netns_present") == {frozenset({("netns", "srgw-provider")}): 1}
    ages = [values(s, "splitroute_peer_handshake_age_seconds") for s in (before, after)]
    shakes = [values(s, "splitroute_peer_last_handshake_seconds") for s in (before, after)]
    stamp = [values(s, "splitroute_status_timestamp_seconds")[frozenset()] for s in (before, after)]
    assert stamp[1] > stamp[0]
    for peer, age in ages[0].items():
        if shakes[0][peer] == shakes[1][peer]:  # no new handshake in between: older by the time between
            assert ages[1][peer] - age == stamp[1] - stamp[0], (peer, ages, stamp)
        else:
            assert ages[1][peer] != age
    assert ages[0] != ages[1]
    assert "PrivateKey" not in second and gateway.check_output("wg show wg0 private-key") not in second


def test_the_client_metrics_change_by_themselves(lab):
    """No playbook: the client's timer rewrites the textfile; a listed name looked up in between (dnsmasq
    adds its address to the tunnel's set) shows in the set sizes, and the handshake age grows."""
    client = lab.host(VPN_CLIENT)
    first = next_textfile(client, first_textfile(client))
    timer_runs(client)
    sets = client.check_output("nft -j list table inet splitroute")
    # a listed name (example.com, group_vars/clients.yml) whose address is in no set yet
    name, address = next(
        ((n, a) for n, a in (("deep.sub.example.com", "198.51.100.212"), ("short.example.com", "198.51.100.213"),
                             ("api.example.com", "198.51.100.211")) if '"%s"' % a not in sets),
        (None, None),
    )  # fmt: skip
    if name is None:
        pytest.fail("every listed address of the lab is in a set already: %s" % sets)
    assert client.run(f"getent ahostsv4 {name}").rc == 0
    second = next_textfile(client, first)
    before, after = strict(first), strict(second)
    for samples in (before, after):
        assert values(samples, "splitroute_client_configured") == {frozenset(): 1}
        assert values(samples, "splitroute_tunnel_up")[frozenset({("interface", "gw")})] == 1
    sizes = [values(s, "splitroute_set_elements") for s in (before, after)]
    assert sum(sizes[1].values()) > sum(sizes[0].values()), sizes
    assert address in client.check_output("nft -j list table inet splitroute")
    tunnel = frozenset({("interface", "gw")})
    ages = [values(s, "splitroute_tunnel_handshake_age_seconds")[tunnel] for s in (before, after)]
    shakes = [values(s, "splitroute_tunnel_last_handshake_seconds")[tunnel] for s in (before, after)]
    stamp = [values(s, "splitroute_status_timestamp_seconds")[frozenset()] for s in (before, after)]
    assert shakes[0] > 0 and stamp[1] > stamp[0]
    if shakes[0] == shakes[1]:
        assert ages[1] - ages[0] == stamp[1] - stamp[0], (ages, stamp)
    assert ages[0] != ages[1]


def test_revert_removes_everything_and_traffic_goes_direct(lab):
    """playbooks/revert.yml (last: it takes the chain down)."""
    rc, out = run_playbook(REVERT, inventory=INVENTORY)
    assert rc == 0, failures(out)
    for host in (VPN_CLIENT, DIRECT_CLIENT, GATEWAY):
        box = lab.host(host)
        assert "splitroute" not in box.check_output("nft list tables"), host
        assert box.check_output("ip -o link show type wireguard || true") == "", host
        assert "fwmark" not in box.check_output("ip -4 rule show"), host
        enabled = "systemctl list-units 'splitroute*' 'wg-quick@*' --state=active --no-legend --plain; "
        enabled += "systemctl list-unit-files 'splitroute*' 'wg-quick@*' --state=enabled --no-legend; true"
        assert box.check_output(enabled).strip() == "", host
    assert echo(lab, VPN_CLIENT, LISTED) == lab.exit_of(VPN_CLIENT)["ipv4"]
    assert echo(lab, DIRECT_CLIENT, LISTED) == lab.exit_of(DIRECT_CLIENT)["ipv4"]
    # the laptop's resolved as it was: the stub link, no global DNS, resolved's drop-in gone, and a
    # listed name asked at 127.0.0.53 goes to the DNS server DHCP gave, on the uplink
    laptop = lab.host(DIRECT_CLIENT)
    assert laptop.check_output("readlink /etc/resolv.conf") == STUB_LINK
    assert not laptop.file("/etc/systemd/resolved.conf.d/splitroute.conf").exists
    status = laptop.check_output("resolvectl status")
    assert "Global" in status and "127.0.0.1" not in status and "~example.com" not in status, status
    assert link_dns(laptop) == [lab.hostvars["inet"]["lab_dns_server"]["ipv4"]]
    tag = uuid.uuid4().hex[:8]
    packets = []
    with lab.capture(DIRECT_CLIENT, "lan", packets):
        out = laptop.check_output("dig +time=3 +tries=1 @127.0.0.53 r-%s.example.com" % tag)
    assert "status: NXDOMAIN" in out, out
    asked = [p for p in parse_packets(packets) if "r-%s" % tag in p.info and p.dport == 53]
    assert {p.dst for p in asked} == {lab.hostvars["inet"]["lab_dns_server"]["ipv4"]}, packets
    rc, out = run_playbook(REVERT, inventory=INVENTORY)
    assert rc == 0, failures(out)
    assert all(changed_tasks(out, host) == [] for host in (GATEWAY, VPN_CLIENT, DIRECT_CLIENT))
