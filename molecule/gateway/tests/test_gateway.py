"""The gateway in the lab, proven with packets.

peer1 (10.4.0.10, direct class) and peer2 (10.4.0.130, provider class) are full-tunnel
WireGuard peers of the gateway. The echo service answers with the address a request came
from: the gateway's own for the direct class, the provider's egress for the VPN class.
"phone" (10.4.0.140, provider class) is a peer without public key: the role writes its client
configuration on the controller, and a lab host (client2, which this scenario leaves
alone otherwise) brings it up.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import changed_tasks as lab_changed_tasks
from conftest import failures, parse_packets, run_playbook

ROOT = Path(__file__).resolve().parents[3]
CONVERGE = ROOT / "molecule" / "gateway" / "converge.yml"
GATEWAY = "gateway"
DIRECT_PEER = ("peer1", "10.4.0.10")
VPN_PEER = ("peer2", "10.4.0.130")
PHONE = ("phone", "10.4.0.140")
VPN_PEER6 = "fd10:4::1130"
PHONE_HOST = "client2"
PEER_FILES = ROOT / ".cache" / "molecule-gateway-peers" / GATEWAY
DNS_SERVER = "198.51.100.253"


@pytest.fixture(scope="module")
def exits(lab):
    return {"direct": lab.hostvars[GATEWAY]["lab_exit"], "vpn": lab.hostvars["provider"]["lab_exit"]}


def echo(lab, host, target, max_time=5, family=4):
    """The address the echo service saw for a request from HOST, or None when it timed out."""
    url = "http://[%s]/" % target if ":" in target else "http://%s/" % target
    result = lab.host(host).run("curl -%d --silent --max-time %d %s" % (family, max_time, url))
    return result.stdout.strip() if result.rc == 0 else None


def playbook(*extra, check=False, limit=GATEWAY):
    return run_playbook(CONVERGE, *extra, check=check, limit=limit)


def changed_tasks(out, host=GATEWAY):
    return lab_changed_tasks(out, host)


def dig(lab, host, name, *options):
    """dig NAME A at the gateway's WireGuard address from HOST: (status, answers)."""
    # the header (for the status) and the answer section only: no authority or additional records
    cmd = "dig +time=2 +tries=1 +noall +comments +answer %s @10.4.0.1 %s A" % (" ".join(options), name)
    out = lab.host(host).run(cmd).stdout
    status = next((line.split("status: ")[1].split(",")[0] for line in out.splitlines() if "status: " in line), None)
    rows = [line.split() for line in out.splitlines() if line and not line.startswith(";")]
    answers = [row[4] for row in rows if len(row) == 5 and row[3] == "A"]
    return status, answers


def fresh_name(zone="example.org"):
    """A name no resolver has cached (the zone answers NXDOMAIN)."""
    return "n%s.%s" % (uuid.uuid4().hex[:10], zone)


def dns_names(packets):
    """The DNS packets of a capture, as (src, dst, info)."""
    return [p for p in parse_packets(packets) if 53 in (p.sport, p.dport)]


def wait_for(lab, host, target, expected, tries=40, family=4):
    for _attempt in range(tries):
        if echo(lab, host, target, max_time=2, family=family) == expected:
            return True
        time.sleep(0.5)
    return False


TARGETS = [("www.example.net", 4), ("198.51.100.212", 4), ("www.example.net", 6), ("2001:db8:100::12", 6)]
# provider falls back to second (converge.yml): the VPN class fails closed only with both down
OPENVPN = ["splitroute-gateway-openvpn@provider.service", "splitroute-gateway-openvpn@second.service"]


def providers_down(gateway):
    gateway.check_output("systemctl stop %s" % " ".join(OPENVPN))


def providers_up(gateway):
    """provider first, second once provider's tunnel is up: provider passes its checks first, so its class is
    back on it (sticky: nothing would move it from second later)."""
    gateway.check_output("systemctl start %s" % OPENVPN[0])
    for _attempt in range(40):
        if "tun" in gateway.run("ip -n srgw-provider -br link").stdout:
            break
        time.sleep(0.25)
    gateway.check_output("systemctl start %s" % OPENVPN[1])


@pytest.mark.parametrize(("name", "family"), TARGETS)
def test_direct_class_exits_by_the_gateway(lab, exits, name, family):
    assert echo(lab, DIRECT_PEER[0], name, family=family) == exits["direct"]["ipv%d" % family]


@pytest.mark.parametrize(("name", "family"), TARGETS)
def test_vpn_class_exits_by_the_provider(lab, exits, name, family):
    assert echo(lab, VPN_PEER[0], name, family=family) == exits["vpn"]["ipv%d" % family]


def test_peer_to_peer_stays_on_the_wireguard_interface(lab):
    packets = []
    with lab.capture(GATEWAY, "wg0", packets):
        lab.host(DIRECT_PEER[0]).check_output("ping -c 2 -W 2 %s" % VPN_PEER[1])
    icmp = [p for p in parse_packets(packets) if {p.src, p.dst} == {DIRECT_PEER[1], VPN_PEER[1]}]
    assert len(icmp) >= 4, packets  # both requests and both replies crossed wg0, in and out
    veth = lab.host(GATEWAY).run("ip -s -j link show srgw-provider").stdout
    assert veth  # the namespace's pair exists; the ping did not need it


@pytest.mark.parametrize("peer", [DIRECT_PEER[0], VPN_PEER[0]])
def test_split_horizon_names_resolve_for_both_classes(lab, peer):
    answer = lab.host(peer).check_output("dig +short +time=2 +tries=2 @10.4.0.1 vault.raff.local A")
    assert answer.split() == ["10.4.0.7"]


def test_dns_for_the_vpn_class_leaves_through_the_provider(lab, exits):
    """The VPN-class peer's queries never cross the uplink; the provider's egress asks instead."""
    vpn_name, direct_name = fresh_name(), fresh_name("example.net")
    uplink, provider = [], []
    with lab.capture(GATEWAY, "wan", uplink), lab.capture("provider", "wan", provider):
        assert dig(lab, VPN_PEER[0], "media.cdn.example.org") == ("NOERROR", ["198.51.100.213"])
        assert dig(lab, VPN_PEER[0], vpn_name)[0] == "NXDOMAIN"
        assert dig(lab, VPN_PEER[0], "www.example.org", "+tcp") == ("NOERROR", ["198.51.100.212"])
        # the control: the direct peer's query leaves by the uplink
        assert dig(lab, DIRECT_PEER[0], direct_name)[0] == "NXDOMAIN"
    on_uplink = dns_names(uplink)
    assert not [p for p in on_uplink if "example.org" in p.info], on_uplink
    assert any(direct_name in p.info and p.dst == DNS_SERVER for p in on_uplink), on_uplink
    # only the provider's tunnel carried the VPN class's queries out of the gateway
    assert any(
        p.dst == lab.hostvars["provider"]["lab_nics"][0]["ipv4"] and p.dport == 1194 for p in parse_packets(uplink)
    )
    at_provider = dns_names(provider)
    egress = exits["vpn"]["ipv4"]
    for name in ("media.cdn.example.org", vpn_name):
        assert any(name in p.info and p.src == egress and p.dst == DNS_SERVER for p in at_provider), at_provider
    assert any(p.src == egress and p.dport == 53 and "www.example.org" in p.info for p in at_provider), at_provider
    assert not [p for p in at_provider if direct_name in p.info]


def test_vpn_class_dns_fails_closed_and_the_direct_class_still_resolves(lab):
    gateway = lab.host(GATEWAY)
    providers_down(gateway)
    try:
        vpn_name, direct_name = fresh_name(), fresh_name("example.net")
        uplink = []
        with lab.capture(GATEWAY, "wan", uplink):
            status, answers = dig(lab, VPN_PEER[0], vpn_name)
            assert status not in ("NOERROR", "NXDOMAIN") and answers == [], (status, answers)
            assert dig(lab, VPN_PEER[0], "deep.sub.example.com")[1] == []
            assert dig(lab, DIRECT_PEER[0], direct_name)[0] == "NXDOMAIN"
            assert dig(lab, DIRECT_PEER[0], "api.example.net") == ("NOERROR", ["198.51.100.212"])
        on_uplink = dns_names(uplink)
        assert not [p for p in on_uplink if vpn_name in p.info or "example.com" in p.info], on_uplink
        assert any(direct_name in p.info for p in on_uplink), on_uplink
    finally:
        providers_up(gateway)
    for _attempt in range(40):
        if dig(lab, VPN_PEER[0], "deep.sub.example.com") == ("NOERROR", ["198.51.100.212"]):
            break
        time.sleep(0.5)
    assert dig(lab, VPN_PEER[0], "deep.sub.example.com") == ("NOERROR", ["198.51.100.212"])


def test_vpn_class_fails_closed_when_openvpn_stops(lab, exits):
    gateway = lab.host(GATEWAY)
    providers_down(gateway)
    try:
        packets = []
        with lab.capture(GATEWAY, "wan", packets):
            assert echo(lab, VPN_PEER[0], "198.51.100.213", max_time=3) is None
            assert echo(lab, VPN_PEER[0], "2001:db8:100::13", max_time=3, family=6) is None
            assert echo(lab, DIRECT_PEER[0], "198.51.100.211") == exits["direct"]["ipv4"]
            assert echo(lab, DIRECT_PEER[0], "2001:db8:100::11", family=6) == exits["direct"]["ipv6"]
        parsed = parse_packets(packets)
        leaked = [
            p for p in parsed if p.dst in ("198.51.100.213", "2001:db8:100::13") or p.src in (VPN_PEER[1], VPN_PEER6)
        ]
        assert not leaked, leaked
        assert any(p.dst == "198.51.100.211" for p in parsed), "the control request did not cross the uplink"
        assert any(p.dst == "2001:db8:100::11" for p in parsed), "the IPv6 control request did not cross the uplink"
    finally:
        providers_up(gateway)
    assert wait_for(lab, VPN_PEER[0], "198.51.100.213", exits["vpn"]["ipv4"])
    assert wait_for(lab, VPN_PEER[0], "2001:db8:100::13", exits["vpn"]["ipv6"], family=6)


def test_vpn_class_fails_closed_when_the_namespace_is_gone(lab, exits):
    gateway = lab.host(GATEWAY)
    providers_down(gateway)
    gateway.check_output("ip netns delete srgw-provider")
    try:
        packets = []
        with lab.capture(GATEWAY, "wan", packets):
            assert echo(lab, VPN_PEER[0], "198.51.100.213", max_time=3) is None
        leaked = [p for p in parse_packets(packets) if p.dst == "198.51.100.213" or p.src == VPN_PEER[1]]
        assert not leaked, leaked
        assert "blackhole default" in gateway.check_output("ip route show table 200")
        assert "blackhole default" in gateway.check_output("ip -6 route show table 200")
        assert echo(lab, VPN_PEER[0], "2001:db8:100::13", max_time=3, family=6) is None
    finally:
        # the boot unit rebuilds the namespace, as at boot; OpenVPN follows it
        gateway.check_output("systemctl restart splitroute-gateway.service")
        providers_up(gateway)
    assert wait_for(lab, VPN_PEER[0], "198.51.100.213", exits["vpn"]["ipv4"])


def health(gateway):
    return json.loads(gateway.check_output("cat /run/splitroute/gateway-health.json"))


def by_label(lab, label):
    hostvars = lab.hostvars["provider"]
    return next(e for e in [hostvars["lab_exit"], *hostvars["lab_exits"]] if e["label"] == label)


def test_the_vpn_class_moves_to_the_second_provider_and_back_with_its_dns_never_by_the_uplink(lab, exits):
    """provider's OpenVPN client stops: within the bound (20 s; 3 failed checks of 2 s) the VPN class leaves by
    second (the echo service sees second's egress, IPv4 and IPv6) and its DNS is asked through second; nothing of
    it crosses the gateway's uplink but the tunnels' own packets. provider back and healthy: the class stays on
    second (sticky, converge.yml); second stopped: it is back on provider."""
    gateway = lab.host(GATEWAY)
    second = by_label(lab, "provider-2")
    server = lab.hostvars["provider"]["lab_nics"][0]["ipv4"]
    target, target6 = "198.51.100.213", "2001:db8:100::13"
    uplink, at_provider = [], []
    name = fresh_name()
    with lab.capture(GATEWAY, "wan", uplink), lab.capture("provider", "wan", at_provider):
        gateway.check_output("systemctl stop splitroute-gateway-openvpn@provider.service")
        try:
            start = time.monotonic()
            moved = wait_for(lab, VPN_PEER[0], target, second["ipv4"], tries=60)
            elapsed = time.monotonic() - start
            assert moved, gateway.run("journalctl -u splitroute-gateway-health.service -n 20 --no-pager").stdout
            assert elapsed < 20, elapsed
            assert echo(lab, VPN_PEER[0], target6, family=6) == second["ipv6"]
            assert dig(lab, VPN_PEER[0], name)[0] == "NXDOMAIN"
            status = gateway.check_output("splitroute status")
            assert "failover provider: by second" in status, status
            metrics = gateway.check_output("splitroute metrics")
            assert re.search(r'splitroute_failover_exit\{[^}]*tunnel="provider",exit="second"\} 1', metrics), metrics
            assert re.search(r'splitroute_exit_healthy\{[^}]*exit="provider"\} 0', metrics), metrics
        finally:
            gateway.check_output("systemctl start splitroute-gateway-openvpn@provider.service")
        for _attempt in range(60):
            if health(gateway)["exits"]["provider"]["healthy"]:
                break
            time.sleep(0.5)
        assert health(gateway)["exits"]["provider"]["healthy"], health(gateway)
        time.sleep(4)  # two more rounds
        assert echo(lab, VPN_PEER[0], target) == second["ipv4"]  # sticky
        assert health(gateway)["groups"]["provider"]["exit"] == "second"
        gateway.check_output("systemctl stop splitroute-gateway-openvpn@second.service")
        try:
            assert wait_for(lab, VPN_PEER[0], target, exits["vpn"]["ipv4"], tries=60)
        finally:
            gateway.check_output("systemctl start splitroute-gateway-openvpn@second.service")
    # the VPN class's request and query left by second's egress; the uplink carried only the tunnels
    asked = dns_names(at_provider)
    assert any(name in p.info and p.src == second["ipv4"] for p in asked), asked
    parsed = parse_packets(uplink)
    leaked = [p for p in parsed if p.dst in (target, target6, DNS_SERVER) or p.src in (VPN_PEER[1], VPN_PEER6)]
    assert not leaked, leaked
    assert any(p.dst == server and p.dport == lab.hostvars["provider"]["lab_openvpn"]["more"][0]["port"]
               for p in parsed)  # fmt: skip
    journal = gateway.check_output("journalctl -u splitroute-gateway-health.service --no-pager -o cat")
    assert "provider provider: provider -> second (provider is down: namespace srgw-provider: no tun* interface" in (
        journal
    ), journal
    assert "provider provider: second -> provider (second is down: namespace srgw-second: no tun* interface" in (
        journal
    ), journal
    assert "provider is healthy again" not in journal, journal
    timing = ROOT / ".cache" / "molecule-gateway-failover.txt"
    timing.write_text("gateway failover: the VPN class by the second provider %.1f s after the first stopped\n"
                      % elapsed)  # fmt: skip


def test_check_mode_on_the_converged_host_reports_no_change():
    rc, out = playbook(check=True)
    assert rc == 0, failures(out)
    assert changed_tasks(out) == []


PEER_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {
                "splitroute_gateway_classes": [
                    {"range": "10.4.0.0/25", "exit": "direct"},
                    {"range": "10.4.0.64/26", "exit": "provider"},
                ]
            },
            "class 10.4.0.64/26: range overlaps class 10.4.0.0/25",
        ),
        (
            {"splitroute_gateway_peers": [{"name": "far", "address": "10.5.0.10", "public_key": PEER_KEY}]},
            "peer far: address 10.5.0.10 is outside the peer subnet 10.4.0.0/24",
        ),
        (
            {
                "splitroute_gateway_peers": [
                    {"name": "a", "address": "10.4.0.20", "public_key": PEER_KEY},
                    {"name": "b", "address": "10.4.0.21", "public_key": PEER_KEY},
                ]
            },
            "peer b: public_key is the same as peer a's",
        ),
        (
            {
                "splitroute_gateway_dns_records": [
                    {"name": "vault.raff.local\nserver=198.51.100.99", "address": "10.4.0.7"}
                ]
            },
            "is not a DNS name",
        ),
    ],
    ids=["overlapping-ranges", "peer-outside-subnet", "duplicate-key", "line-injected-in-a-dns-record"],
)
def test_bad_input_fails_before_any_change(lab, extra, message):
    before = lab.host(GATEWAY).check_output("md5sum /etc/wireguard/wg0.conf /etc/splitroute-gateway/gateway.nft")
    rc, out = playbook(extra)
    assert rc != 0
    errors = failures(out)
    assert any(message in error for error in errors), errors
    assert any("invalid gateway configuration" in error for error in errors), errors
    assert changed_tasks(out) == []
    after = lab.host(GATEWAY).check_output("md5sum /etc/wireguard/wg0.conf /etc/splitroute-gateway/gateway.nft")
    assert after == before


RESOLVCONF_STUB = """#!/bin/sh
# test stand-in for resolvconf (wg-quick's DNS = ): keep the old file, write the new one
case "$1" in
  -a) [ -f /run/resolv.conf.phone ] || cp /etc/resolv.conf /run/resolv.conf.phone; cat > /etc/resolv.conf ;;
  -d) if [ -f /run/resolv.conf.phone ]; then mv /run/resolv.conf.phone /etc/resolv.conf; fi ;;
esac
"""


def test_an_unmanaged_peer_gets_a_working_client_configuration(lab, exits):
    """The phone's files on the controller: 0600, a QR code of the configuration, and it connects."""
    conf, key, png = (PEER_FILES / ("phone." + ext) for ext in ("conf", "key", "png"))
    assert PEER_FILES.stat().st_mode & 0o777 == 0o700
    for path in (conf, key, png):
        assert path.stat().st_mode & 0o777 == 0o600, path
    text = conf.read_text()
    private = key.read_text().strip()
    assert "PrivateKey = %s\n" % private in text
    gateway_key = lab.host(GATEWAY).check_output("wg show wg0 public-key")
    assert "PublicKey = %s\n" % gateway_key in text
    for line in (
        "Address = 10.4.0.140/32, fd10:4::1140/128",
        "DNS = 10.4.0.1",
        "Endpoint = 198.51.100.40:51820",
        "AllowedIPs = 0.0.0.0/0, ::/0",
    ):
        assert line + "\n" in text, line
    # the gateway knows the phone by the public key of the controller's private key
    phone_public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True)
    assert phone_public.stdout.strip() in lab.host(GATEWAY).check_output("wg show wg0 peers").split()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # zbar-tools is in scripts/host-packages.txt: the decode is never skipped
    decoded = subprocess.run(["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, check=True)
    assert decoded.stdout.rstrip("\n") == text.rstrip("\n")

    host = lab.host(PHONE_HOST)
    host.check_output(
        "cat > /usr/local/sbin/resolvconf <<'EOF'\n%sEOF\nchmod 0755 /usr/local/sbin/resolvconf" % RESOLVCONF_STUB
    )
    host.check_output("install -m 0600 /dev/stdin /etc/wireguard/phone.conf <<'EOF'\n%sEOF" % text)
    try:
        host.check_output("WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go wg-quick up phone")
        assert host.check_output("cat /etc/resolv.conf").split() == ["nameserver", "10.4.0.1"]
        assert wait_for(lab, PHONE_HOST, "198.51.100.211", exits["vpn"]["ipv4"])
        # by name, through the gateway's resolver for its class, and out through the provider
        for family in (4, 6):
            answer = host.check_output("curl -%d --silent --max-time 5 http://api.example.net/" % family).strip()
            assert answer == exits["vpn"]["ipv%d" % family]
    finally:
        host.run("wg-quick down phone")
        host.run("rm -f /etc/wireguard/phone.conf /usr/local/sbin/resolvconf")
    assert host.check_output("ip -br link").find("phone") == -1


def test_no_private_key_in_the_play_output_unless_asked():
    private = (PEER_FILES / "phone.key").read_text().strip()
    rc, out = playbook()
    assert rc == 0, failures(out)
    assert changed_tasks(out) == []  # the key, configuration and PNG are reused
    assert private not in json.dumps(out)
    assert "\u2588" not in json.dumps(out, ensure_ascii=False)  # no QR code either
    rc, out = playbook({"splitroute_gateway_peer_qr_terminal": True})
    assert rc == 0, failures(out)
    assert changed_tasks(out) == []
    assert "\u2588" in json.dumps(out, ensure_ascii=False)  # the QR code, in block characters


# A second provider for test_local_networks_and_a_second_provider_come_and_go: the upper half of
# the provider range (no lab peer there), the same profile, and a server address nothing answers
# at (its namespace routes only that address): its client never connects, its class fails closed.
TWO_PROVIDERS = {
    "splitroute_gateway_classes": [
        {"range": "10.4.0.0/25", "range6": "fd10:4::/116", "exit": "direct"},
        {"range": "10.4.0.128/26", "range6": "fd10:4::1000/117", "exit": "provider"},
        {"range": "10.4.0.192/26", "range6": "fd10:4::1800/117", "exit": "provider2"},
    ],
    # the converge's two (provider falls back to second) and a third
    "splitroute_gateway_providers": (
        "{{ gateway_lab_providers + [{'name': 'provider2', 'server': '198.51.100.250', 'port': 1194,"
        " 'config': gateway_profile.content | b64decode}] }}"
    ),
}


def wg_session(gateway, peer_key):
    """The gateway's WireGuard server as a peer's session sees it: when the unit started, its wireguard-go
    process, and the time of the peer's latest handshake."""
    started = gateway.check_output("systemctl show -p ActiveEnterTimestampMonotonic --value wg-quick@wg0.service")
    process = gateway.check_output("pgrep -f '^wireguard-go wg0'")
    handshakes = dict(line.split() for line in gateway.check_output("wg show wg0 latest-handshakes").splitlines())
    return started, process, int(handshakes[peer_key])


def same_session(before, after):
    """The same unit and process, and no handshake but WireGuard's own rekey of a busy session (every 120 s,
    REKEY_AFTER_TIME): a restarted server makes every peer handshake again at once."""
    return after[:2] == before[:2] and (after[2] == before[2] or after[2] >= before[2] + 120)


def test_local_networks_and_a_second_provider_come_and_go(lab, exits):
    """A local network is reached through main by every class; dropping it removes its rule. In the
    same two runs, a second provider comes and goes (issue 12's pruning): when it leaves the
    inventory, its units are stopped and disabled, its namespace, veth pair, rules, table routes and
    files go, and the first provider carries on. And a peer comes and goes, live: a download peer1
    runs across both runs is never interrupted, the server is not restarted (wg syncconf) and peer1's
    handshake stays the one it had."""
    gateway, peer1 = lab.host(GATEWAY), lab.host(DIRECT_PEER[0])
    peer1_key = peer1.check_output("wg show wg0 public-key")
    served = lab.hostvars["inet"]["lab_list_server"]
    lab.host("inet").check_output("head -c 6M /dev/urandom > %s/srgw-big.bin" % served["root"])
    download = "srgw-download-%s" % uuid.uuid4().hex[:6]
    # about 60 s at 100 kB/s: longer than the two runs; a reset connection fails the unit
    peer1.check_output(
        "systemd-run --quiet --remain-after-exit --unit=%s curl --fail --silent --limit-rate 100k "
        "-o /run/%s.bin http://%s:%d/srgw-big.bin" % (download, download, served["ipv4"], served["http"])
    )
    session = wg_session(gateway, peer1_key)
    tablet = {"name": "tablet", "address": "10.4.0.20", "address6": "fd10:4::20", "public_key": PEER_KEY}
    try:
        rc, out = playbook({"splitroute_gateway_local_networks": ["198.51.100.212/32"], "gateway_more_peers": [tablet],
                            **TWO_PROVIDERS})  # fmt: skip
        assert rc == 0, failures(out)
        assert PEER_KEY in gateway.check_output("wg show wg0 peers").split()
        assert same_session(session, wg_session(gateway, peer1_key))
        assert "to 198.51.100.212 lookup main" in gateway.check_output("ip rule show priority 2001")
        assert echo(lab, VPN_PEER[0], "198.51.100.212") == exits["direct"]["ipv4"]
        assert echo(lab, VPN_PEER[0], "198.51.100.213") == exits["vpn"]["ipv4"]
        plan = json.loads(gateway.check_output("cat /etc/splitroute/gateway.json"))
        second = next(p for p in plan["providers"] if p["name"] == "provider2")
        assert gateway.run("ip netns exec %s true" % second["netns"]).rc == 0
        assert "lookup %s" % second["table"] in gateway.check_output("ip rule show priority %d" % second["priority"])
        assert "blackhole default" in gateway.check_output("ip route show table %s" % second["table"])
        units = ["splitroute-gateway-openvpn@provider2.service", "splitroute-gateway-dns@provider2.service"]
        for unit in units:
            assert gateway.run("systemctl is-enabled %s" % unit).stdout.strip() == "enabled", unit
    finally:
        rc, out = playbook()
        assert rc == 0, failures(out)
    # the peer went as it came, live, and the download carried on throughout
    assert PEER_KEY not in gateway.check_output("wg show wg0 peers").split()
    assert same_session(session, wg_session(gateway, peer1_key))
    shown = peer1.check_output("systemctl show -p ActiveState -p Result %s" % download)
    peer1.run("systemctl stop %s; systemctl reset-failed %s; rm -f /run/%s.bin" % (download, download, download))
    lab.host("inet").run("rm -f %s/srgw-big.bin" % served["root"])
    state = dict(line.split("=", 1) for line in shown.splitlines())
    assert state == {"ActiveState": "active", "Result": "success"}, state
    assert gateway.check_output("ip rule show priority 2001") == ""
    assert echo(lab, VPN_PEER[0], "198.51.100.212") == exits["vpn"]["ipv4"]
    # the second provider left no trace; the first is untouched
    for unit in units:
        assert gateway.run("systemctl is-active %s" % unit).stdout.strip() != "active", unit
        assert gateway.run("systemctl is-enabled %s" % unit).stdout.strip() != "enabled", unit
    assert second["netns"] not in gateway.check_output("ip netns list")
    assert second["host_veth"] not in gateway.check_output("ip -br link")
    rules = "ip rule show priority %d; ip -6 rule show priority %d" % (second["priority"], second["priority"])
    assert gateway.check_output(rules) == ""
    routes = "ip route show table %s; ip -6 route show table %s" % (second["table"], second["table"])
    assert gateway.check_output(routes) == ""
    for path in (
        "/etc/splitroute-gateway/netns-provider2.nft",
        "/etc/splitroute-gateway/openvpn/provider2.conf",
        "/etc/netns/%s" % second["netns"],
    ):
        assert not gateway.file(path).exists, path
    assert [p["name"] for p in json.loads(gateway.check_output("cat /etc/splitroute/gateway.json"))["providers"]] == [
        "provider", "second"
    ]  # fmt: skip
    assert "srgw-provider" in gateway.check_output("ip netns list")
    assert echo(lab, VPN_PEER[0], "198.51.100.213") == exits["vpn"]["ipv4"]


# the lab's public DoT and DoH resolver (the echo service on its ports 853 and 443), in doh_addresses
# one TCP connection from a lab host: open, refused (a reset: it was let in) or timeout (dropped)
CONNECT = (
    "import socket, sys; h = sys.argv[1]; s = socket.socket(socket.AF_INET6 if ':' in h else socket.AF_INET);"
    " s.settimeout(2)\ntry: s.connect((h, int(sys.argv[2]))); print('open')\n"
    "except ConnectionRefusedError: print('refused')\nexcept OSError: print('timeout')"
)


def connect(lab, host, target, port):
    return lab.host(host).check_output("python3 -c %s %s %d" % (shlex.quote(CONNECT), target, port))


def test_the_input_policy_takes_wireguard_the_peers_dns_and_ssh_from_the_allowed_network_only(lab):
    """splitroute_gateway_input_policy (converge.yml: SSH from inet's wan address only): SSH from inet is let in
    (open, or a reset where no sshd listens), from the provider host it is dropped, IPv4 and IPv6; another port is
    dropped from everywhere, a peer's included; the peers' WireGuard and DNS work (every other test here too)."""
    gateway = lab.hostvars[GATEWAY]["lab_nics"][0]
    for family in ("ipv4", "ipv6"):
        assert connect(lab, "inet", gateway[family], 22) in ("open", "refused"), family
        assert connect(lab, "provider", gateway[family], 22) == "timeout", family
        assert connect(lab, "inet", gateway[family], 8080) == "timeout", family
    assert connect(lab, DIRECT_PEER[0], "10.4.0.1", 8080) == "timeout"
    assert dig(lab, DIRECT_PEER[0], "vault.raff.local") == ("NOERROR", ["10.4.0.7"])
    assert dig(lab, VPN_PEER[0], "vault.raff.local") == ("NOERROR", ["10.4.0.7"])
    chain = lab.host(GATEWAY).check_output("nft list chain inet splitroute_gateway input")
    assert "policy drop" in chain and "udp dport 51820 accept" in chain, chain


DOT = DOH = ("198.51.100.230", "2001:db8:100::30")


def tcp_to(lab, host, target, port, family):
    """(curl's exit status, what the echo service saw, seconds) for HTTP to TARGET:PORT from HOST."""
    url = "http://[%s]:%d/" % (target, port) if family == 6 else "http://%s:%d/" % (target, port)
    out = lab.host(host).run("curl -%d --silent --max-time 5 -w ' %%{time_total}' %s" % (family, url))
    words = out.stdout.split()
    return out.rc, words[0] if len(words) == 2 else None, float(words[-1])


def test_the_peers_dot_and_doh_are_refused_and_the_canary_is_nxdomain_and_with_the_option_off_the_control(lab, exits):
    """splitroute_gateway_dns_bypass (converge.yml): from a peer of each class, DoT and DoH to the lab's public
    DoT/DoH resolver are refused at once (a TCP reset), IPv4 and IPv6, DoT to the resolvers' upstream is not, and
    the Firefox canary answers NXDOMAIN from the class's resolver; the gateway counts them. Then a run with the
    option off (the control):
    the same connections are made, each by its class's exit, and the canary resolves."""
    gateway = lab.host(GATEWAY)
    peers = {DIRECT_PEER[0]: exits["direct"], VPN_PEER[0]: exits["vpn"]}
    for peer in peers:
        for family in (4, 6):
            for target, port in ((DOT[family // 6], 853), (DOH[family // 6], 443)):
                rc, seen, took = tcp_to(lab, peer, target, port, family)
                assert rc == 7 and seen is None and took < 1, (peer, target, port, rc, seen, took)
        assert dig(lab, peer, "use-application-dns.net")[0] == "NXDOMAIN", peer
    # the resolvers' upstream (the lab resolver) is the one DoT may still reach
    assert tcp_to(lab, DIRECT_PEER[0], DNS_SERVER, 853, 4)[1] == exits["direct"]["ipv4"]
    status = gateway.check_output("splitroute status")
    rejected = re.search(r"dns bypass rejected: doh (\d+), dot (\d+) \(packets\)", status)
    assert rejected and all(int(n) >= 4 for n in rejected.groups()), status
    rc, out = playbook({"splitroute_gateway_dns_bypass": {}})
    assert rc == 0, failures(out)
    for peer, exit_ in peers.items():
        for family in (4, 6):
            for target, port in ((DOT[family // 6], 853), (DOH[family // 6], 443)):
                assert tcp_to(lab, peer, target, port, family)[1] == exit_["ipv%d" % family], (peer, target, port)
        assert dig(lab, peer, "use-application-dns.net") == ("NOERROR", ["198.51.100.210"]), peer


def test_after_a_restart_the_chain_comes_back_with_no_ansible_run(lab, exits):
    """podman restart of the gateway: WireGuard, the namespace, OpenVPN, the resolvers and the rules come back
    by themselves, and the VPN-class peer never leaves directly meanwhile.

    The capture runs on inet's side of the wan (the gateway's own capture would not outlive the restart): the
    echo service is only reachable through inet, so any request to it shows there with its source.
    """
    gateway, peer = lab.host(GATEWAY), lab.host(VPN_PEER[0])
    target = "198.51.100.213"
    probe = "srgw-restart-%s" % uuid.uuid4().hex[:6]
    log = "/run/%s.log" % probe
    peer.check_output(
        "systemd-run --quiet --collect --unit=%s sh -c 'for i in $(seq 1 400); do "
        "curl -4 --silent --max-time 1 http://%s/ >> %s; echo >> %s; sleep 0.2; done'" % (probe, target, log, log)
    )
    packets = []
    try:
        with lab.capture("inet", "wan", packets):
            start = time.monotonic()
            subprocess.run(["podman", "restart", "--time", "5", lab.hostvars[GATEWAY]["ansible_host"]], check=True)
            for _attempt in range(120):
                if gateway.run("systemctl is-system-running").stdout.strip() in ("running", "degraded"):
                    break
                time.sleep(0.5)
            back = wait_for(lab, VPN_PEER[0], target, exits["vpn"]["ipv4"], tries=120)
            elapsed = time.monotonic() - start
        assert back, "traffic did not resume through the provider"
    finally:
        peer.run("systemctl stop %s" % probe)
    answers = [line for line in peer.check_output("cat %s" % log).splitlines() if line]
    peer.run("rm -f %s" % log)
    assert answers and set(answers) == {exits["vpn"]["ipv4"]}, answers
    parsed = parse_packets(packets)
    leaked = [p for p in parsed if (p.dst == target and p.src != exits["vpn"]["ipv4"]) or p.src == VPN_PEER[1]]
    assert not leaked, leaked
    assert any(p.dst == target and p.src == exits["vpn"]["ipv4"] for p in parsed)
    # the whole chain, with no Ansible run
    for unit in (
        "splitroute-gateway.service",
        "splitroute-gateway-openvpn@provider.service",
        "splitroute-gateway-dns.service",
        "splitroute-gateway-dns@provider.service",
        "wg-quick@wg0.service",
    ):
        assert gateway.run("systemctl is-active %s" % unit).stdout.strip() == "active", unit
    forwarding = "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding"
    assert gateway.check_output(forwarding).split() == ["1", "1"]
    assert "srgw-provider" in gateway.check_output("ip netns list")
    assert "tun0" in gateway.check_output("ip -n srgw-provider -br link")
    assert len(gateway.check_output("wg show wg0 peers").split()) == 3
    rules = gateway.check_output("ip rule show; ip -6 rule show")
    for rule in (
        "from 10.4.0.128/25 lookup 200",
        "from 10.255.255.1 lookup 200",
        "to 10.4.0.0/24 lookup main",
        "from fd10:4::1000/116 lookup 200",
    ):
        assert rule in rules, rules
    table = gateway.check_output("ip route show table 200")
    assert "default via 10.255.255.2 dev srgw-provider" in table
    assert "blackhole default" in table
    assert gateway.run("journalctl -b | grep -i 'ordering cycle'").rc != 0
    assert dig(lab, VPN_PEER[0], "v4only.example.com") == ("NOERROR", ["198.51.100.212"])
    assert echo(lab, VPN_PEER[0], "2001:db8:100::13", family=6) == exits["vpn"]["ipv6"]
    assert "blackhole default" in gateway.check_output("ip -6 route show table 200")
    # an idle peer's WireGuard session is renewed by its next packets (handshake retries every 5 s)
    assert wait_for(lab, DIRECT_PEER[0], "198.51.100.212", exits["direct"]["ipv4"])
    # the figure for the README (pytest captures print when molecule runs the tests)
    timing = ROOT / ".cache" / "molecule-gateway-restart.txt"
    timing.write_text("podman restart of the gateway: traffic through the provider again after %.1f s\n" % elapsed)


def test_state_absent_leaves_nothing_behind(lab, exits):
    """And puts back what prepare.yml left: forwarding off, the distribution's dnsmasq service running."""
    gateway = lab.host(GATEWAY)
    original = json.loads(gateway.check_output("cat /var/lib/splitroute-gateway/original.json"))
    assert original == {
        "net.ipv4.ip_forward": "0",
        "net.ipv6.conf.all.forwarding": "0",
        "dnsmasq.service": {"state": "running", "status": "enabled"},
    }
    assert gateway.run("systemctl is-active dnsmasq.service").stdout.strip() != "active"
    try:
        rc, out = playbook({"splitroute_gateway_state": "absent"})
        assert rc == 0, failures(out)
        assert gateway.check_output("cat /proc/sys/net/ipv4/ip_forward") == "0"
        assert gateway.check_output("cat /proc/sys/net/ipv6/conf/all/forwarding") == "0"
        assert gateway.check_output("ip -6 route show table 200") == ""
        assert gateway.run("systemctl is-active dnsmasq.service").stdout.strip() == "active"
        assert gateway.run("systemctl is-enabled dnsmasq.service").stdout.strip() == "enabled"
        rules = gateway.check_output("ip rule show; ip -6 rule show")
        assert not [line for line in rules.splitlines() if line.split(":")[0].strip().startswith(("20", "21"))]
        assert gateway.check_output("ip route show table 200") == ""
        assert "srgw-provider" not in gateway.check_output("ip netns list")
        assert "srgw-" not in gateway.check_output("ip -br link")
        assert "wg0" not in gateway.check_output("ip -br link")
        assert "splitroute_gateway" not in gateway.check_output("nft list tables")
        for unit in [
            "splitroute-gateway.service",
            "splitroute-gateway-openvpn@provider.service",
            "splitroute-gateway-dns.service",
            "splitroute-gateway-dns@provider.service",
            "wg-quick@wg0.service",
        ]:
            assert gateway.run("systemctl is-active %s" % unit).stdout.strip() != "active", unit
            assert gateway.run("systemctl is-enabled %s" % unit).stdout.strip() != "enabled", unit
        for path in [
            "/etc/splitroute-gateway",
            "/etc/wireguard/wg0.conf",
            "/usr/local/sbin/splitroute-gateway-boot",
            "/etc/systemd/system/splitroute-gateway.service",
            "/etc/netns/srgw-provider",
            "/var/lib/splitroute-gateway",
            "/etc/systemd/system/splitroute-gateway-dns@.service",
        ]:
            assert not gateway.file(path).exists, path
        # and a second removal changes nothing
        rc, out = playbook({"splitroute_gateway_state": "absent"})
        assert rc == 0, failures(out)
        assert changed_tasks(out) == []
    finally:
        rc, out = playbook(limit="all")
        assert rc == 0, failures(out)
    assert wait_for(lab, VPN_PEER[0], "198.51.100.212", exits["vpn"]["ipv4"])
    assert wait_for(lab, DIRECT_PEER[0], "198.51.100.212", exits["direct"]["ipv4"])
    # applied again: the distribution's resolver is stopped again, forwarding is on
    assert gateway.run("systemctl is-active dnsmasq.service").stdout.strip() != "active"
    forwarding = "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding"
    assert gateway.check_output(forwarding).split() == ["1", "1"]
