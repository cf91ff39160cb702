"""The gateway in the lab, proven with packets.

peer1 (10.4.0.10, direct class) and peer2 (10.4.0.130, provider class) are full-tunnel
WireGuard peers of the gateway. The echo service answers with the address a request came
from: the gateway's own for the direct class, the provider's egress for the VPN class.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import changed_tasks as lab_changed_tasks
from conftest import failures, parse_packets, run_playbook

ROOT = Path(__file__).resolve().parents[3]
CONVERGE = ROOT / "molecule" / "gateway" / "converge.yml"
GATEWAY = "gateway"
DIRECT_PEER = ("peer1", "10.4.0.10")
VPN_PEER = ("peer2", "10.4.0.130")


@pytest.fixture(scope="module")
def exits(lab):
    return {"direct": lab.hostvars[GATEWAY]["lab_exit"], "vpn": lab.hostvars["provider"]["lab_exit"]}


def echo(lab, host, target, max_time=5):
    """The address the echo service saw for a request from HOST, or None when it timed out."""
    result = lab.host(host).run("curl -4 --silent --max-time %d http://%s/" % (max_time, target))
    return result.stdout.strip() if result.rc == 0 else None


def playbook(*extra, check=False, limit=GATEWAY):
    return run_playbook(CONVERGE, *extra, check=check, limit=limit)


def changed_tasks(out, host=GATEWAY):
    return lab_changed_tasks(out, host)


def wait_for(lab, host, target, expected, tries=40):
    for _attempt in range(tries):
        if echo(lab, host, target, max_time=2) == expected:
            return True
        time.sleep(0.5)
    return False


@pytest.mark.parametrize("name", ["www.example.net", "198.51.100.212"])
def test_direct_class_exits_by_the_gateway(lab, exits, name):
    assert echo(lab, DIRECT_PEER[0], name) == exits["direct"]["ipv4"]


@pytest.mark.parametrize("name", ["www.example.net", "198.51.100.212"])
def test_vpn_class_exits_by_the_provider(lab, exits, name):
    assert echo(lab, VPN_PEER[0], name) == exits["vpn"]["ipv4"]


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


def test_vpn_class_fails_closed_when_openvpn_stops(lab, exits):
    gateway = lab.host(GATEWAY)
    gateway.check_output("systemctl stop splitroute-gateway-openvpn@provider.service")
    try:
        packets = []
        with lab.capture(GATEWAY, "wan", packets):
            assert echo(lab, VPN_PEER[0], "198.51.100.213", max_time=3) is None
            assert echo(lab, DIRECT_PEER[0], "198.51.100.211") == exits["direct"]["ipv4"]
        parsed = parse_packets(packets)
        leaked = [p for p in parsed if p.dst == "198.51.100.213" or p.src == VPN_PEER[1]]
        assert not leaked, leaked
        assert any(p.dst == "198.51.100.211" for p in parsed), "the control request did not cross the uplink"
    finally:
        gateway.check_output("systemctl start splitroute-gateway-openvpn@provider.service")
    assert wait_for(lab, VPN_PEER[0], "198.51.100.213", exits["vpn"]["ipv4"])


def test_vpn_class_fails_closed_when_the_namespace_is_gone(lab, exits):
    gateway = lab.host(GATEWAY)
    gateway.check_output("systemctl stop splitroute-gateway-openvpn@provider.service")
    gateway.check_output("ip netns delete srgw-provider")
    try:
        packets = []
        with lab.capture(GATEWAY, "wan", packets):
            assert echo(lab, VPN_PEER[0], "198.51.100.213", max_time=3) is None
        leaked = [p for p in parse_packets(packets) if p.dst == "198.51.100.213" or p.src == VPN_PEER[1]]
        assert not leaked, leaked
        assert "blackhole default" in gateway.check_output("ip route show table 200")
    finally:
        # the boot unit rebuilds the namespace, as at boot; OpenVPN follows it
        gateway.check_output("systemctl restart splitroute-gateway.service")
        gateway.check_output("systemctl start splitroute-gateway-openvpn@provider.service")
    assert wait_for(lab, VPN_PEER[0], "198.51.100.213", exits["vpn"]["ipv4"])


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
    ],
    ids=["overlapping-ranges", "peer-outside-subnet", "duplicate-key"],
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


def test_local_networks_bypass_the_provider(lab, exits):
    """A local network is reached through main by every class; dropping it removes its rule."""
    gateway = lab.host(GATEWAY)
    try:
        rc, out = playbook({"splitroute_gateway_local_networks": ["198.51.100.212/32"]})
        assert rc == 0, failures(out)
        assert "to 198.51.100.212 lookup main" in gateway.check_output("ip rule show priority 2001")
        assert echo(lab, VPN_PEER[0], "198.51.100.212") == exits["direct"]["ipv4"]
        assert echo(lab, VPN_PEER[0], "198.51.100.213") == exits["vpn"]["ipv4"]
    finally:
        rc, out = playbook()
        assert rc == 0, failures(out)
    assert gateway.check_output("ip rule show priority 2001") == ""
    assert echo(lab, VPN_PEER[0], "198.51.100.212") == exits["vpn"]["ipv4"]


def test_state_absent_leaves_nothing_behind(lab, exits):
    gateway = lab.host(GATEWAY)
    try:
        rc, out = playbook({"splitroute_gateway_state": "absent"})
        assert rc == 0, failures(out)
        rules = gateway.check_output("ip rule show")
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
