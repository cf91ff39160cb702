"""splitroute.vpn.status_report: the status playbook's report and metrics, from real command outputs.

The fixtures under fixtures/status/ are what the playbook's commands printed in namespaces built
by fixtures/status/capture.py (wireguard-go, nftables 1.0.6, iproute2 6.1): a client whose tunnel
had shaken hands with a gateway, that gateway, the client after its tunnel went away and its IPv6
blackhole was deleted, and a namespace with nothing.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from prometheus_text import parse_metrics  # tests/prometheus_text.py

from ansible_collections.splitroute.vpn.plugins.filter.status_report import FilterModule, parse_wg_dump, status_report

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "status"
PRIVATE = "kPD5UOb8RV6c0OLEkbGWxUg0mmVrqOpRAexDcHxvV0M="
PSK = "Zb2B/gFh7cNPTkc7bqHj1IFSmXW6dTVNvJuKMEQ0AE0="


def load(name):
    return json.loads((FIXTURES / ("%s.json" % name)).read_text())


def fixture_wg(name):
    """The fixture's own dump, read without the filter: (interface, peer key, handshake, rx, tx) per peer."""
    return [
        (f[0], f[1], int(f[5]), int(f[6]), int(f[7]))
        for f in (line.split("\t") for line in load(name)["wg"]["stdout"].splitlines())
        if len(f) == 9
    ]


def fixture_set_sizes(name):
    """Element counts straight from the fixture's nft JSON."""
    data = json.loads(load(name)["nft_client"]["stdout"])
    return {i["set"]["name"]: len(i["set"].get("elem", [])) for i in data["nftables"] if "set" in i}


def metric(samples, which, **labels):
    want = set(labels.items())
    found = [value for (n, lab), value in samples.items() if n == which and want <= lab]
    assert len(found) == 1, "%s%r: %r" % (which, labels, found)
    return found[0]


def names(samples):
    return {n for n, _labels in samples}


# ---------------------------------------------------------------- the captured states


def test_client_with_a_live_tunnel():
    report = status_report(load("client"), {"host": "laptop-1"})
    client = report["client"]
    assert client["configured"] and not report["gateway"]["configured"]
    assert report["problems"] == [] and report["errors"] == []
    (tunnel,) = client["tunnels"]
    sizes = fixture_set_sizes("client")
    assert sizes == {"wg0_v4": 3, "wg0_v6": 1, "wg0_net4": 2, "wg0_net6": 0}  # what capture.py put there
    assert {s["name"]: s["elements"] for s in tunnel["sets"]} == sizes
    assert tunnel["mark"] == 1 and tunnel["up"]
    for state in tunnel["families"]:
        assert state["rule"]["priority"] == 1000 and state["table"] == "100"
        assert state["route"] == {"dev": "wg0", "gateway": None, "metric": 10}
        assert state["blackhole"] == {"type": "blackhole", "metric": 100} and state["armed"]
    ((iface, peer, handshake, rx, tx),) = fixture_wg("client")
    (wg,) = report["wireguard"]
    assert (wg["interface"], wg["last_handshake"], wg["rx_bytes"], wg["tx_bytes"]) == (iface, handshake, rx, tx)
    assert handshake > 0 and wg["handshake_age"] == report["timestamp"] - handshake

    lines = report["lines"]
    assert lines[0] == "laptop-1: client configured, gateway not configured, no problems (at %s UTC)" % (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(report["timestamp"]))
    )
    age = report["timestamp"] - handshake  # the capture ran within a second or two of the handshake
    assert (
        "  tunnel wg0: up, 1 peer (1 with a handshake), last handshake %d s ago, rx %d B, tx %d B" % (age, rx, tx)
        in lines
    )
    assert "    sets: wg0_v4 3, wg0_v6 1, wg0_net4 2, wg0_net6 0" in lines
    assert (
        "    ipv6: mark 0x1 -> rule 1000 -> table 100: route dev wg0 metric 10, blackhole metric 100 (armed)" in lines
    )
    assert "  ipv4 rule 1000: from all fwmark 0x1 lookup 100" in lines

    samples = parse_metrics(report["metrics"])
    for set_name, size in sizes.items():
        assert metric(samples, "splitroute_set_elements", host="laptop-1", table="splitroute", set=set_name) == size
    assert metric(samples, "splitroute_tunnel_up", interface="wg0") == 1
    assert metric(samples, "splitroute_tunnel_last_handshake_seconds", interface="wg0") == handshake
    assert metric(samples, "splitroute_tunnel_rx_bytes", interface="wg0") == rx
    assert metric(samples, "splitroute_tunnel_tx_bytes", interface="wg0") == tx
    assert metric(samples, "splitroute_peer_last_handshake_seconds", interface="wg0", peer=peer) == handshake
    assert metric(samples, "splitroute_rules", family="ipv6") == 1
    for family in ("ipv4", "ipv6"):
        assert metric(samples, "splitroute_rule_present", role="client", name="wg0", family=family, table="100") == 1
        assert metric(samples, "splitroute_blackhole_armed", table="100", family=family) == 1
        assert metric(samples, "splitroute_route_present", table="100", family=family) == 1
    assert metric(samples, "splitroute_status_timestamp_seconds") == int(load("client")["now"]["stdout"])
    assert metric(samples, "splitroute_problems") == 0
    assert "splitroute_netns_present" not in names(samples)


def test_gateway_with_peers_and_a_provider():
    raw = load("gateway")
    peers = fixture_wg("gateway")
    (provider_ns,) = [n["name"] for n in json.loads(raw["netns"]["stdout"]) if n["name"].startswith("srgw-")]
    settings = {
        "host": "gw-1",
        # one peer is known by its public key, the other (key not yet published) by its address
        "gateway_peers": [
            ["laptop", peers[0][1], "10.4.0.10"],
            {"name": "phone", "public_key": "", "address": "10.4.0.130"},
        ],
    }
    report = status_report(raw, settings)
    gateway = report["gateway"]
    assert gateway["configured"] and not report["client"]["configured"]
    assert report["problems"] == []
    assert [(p["name"], p["last_handshake"]) for p in gateway["peers"]] == [("laptop", peers[0][2]), ("phone", 0)]
    assert gateway["rules"] == [
        "2000: from 10.4.0.0/24 to 10.4.0.0/24 lookup main",
        "2100: from 10.4.0.128/25 lookup 200",
    ]
    (prov,) = gateway["providers"]
    assert (prov["name"], prov["netns"], prov["netns_present"], prov["table"]) == (
        provider_ns[5:], provider_ns, True, "200",
    )  # fmt: skip
    assert prov["route"] == {"dev": provider_ns, "gateway": "10.255.255.2", "metric": 10} and prov["armed"]

    lines = report["lines"]
    age = report["timestamp"] - peers[0][2]
    assert (
        "  wg0: up, 2 peers (1 with a handshake), last handshake %d s ago, rx %d B, tx %d B, listen port 51820"
        % (age, peers[0][3], peers[0][4])
    ) in lines  # fmt: skip
    assert "    peer phone %s 10.4.0.130/32: handshake never, rx 0 B, tx 0 B" % peers[1][1] in lines
    assert (
        "  provider %s: namespace %s present, ipv4 table 200: route via 10.255.255.2 dev %s metric 10, "
        "blackhole metric 100 (armed)" % (provider_ns[5:], provider_ns, provider_ns)
    ) in lines

    samples = parse_metrics(report["metrics"])
    assert metric(samples, "splitroute_peer_last_handshake_seconds", name="phone") == 0
    assert metric(samples, "splitroute_peer_last_handshake_seconds", name="laptop", peer=peers[0][1]) == peers[0][2]
    assert metric(samples, "splitroute_tunnel_peers", interface="wg0") == 2
    assert metric(samples, "splitroute_netns_present", netns=provider_ns) == 1
    assert metric(samples, "splitroute_rule_present", role="gateway", family="ipv4", table="200") == 1
    assert metric(samples, "splitroute_blackhole_armed", table="200", family="ipv4") == 1
    assert metric(samples, "splitroute_rules", family="ipv4") == 2
    assert metric(samples, "splitroute_nft_table_present", table="splitroute_gateway") == 1
    assert "splitroute_set_elements" not in names(samples)


def test_client_after_its_tunnel_went_away_and_the_ipv6_blackhole_was_deleted():
    report = status_report(load("client_down"), {"host": "laptop-1"})
    (tunnel,) = report["client"]["tunnels"]
    v4, v6 = tunnel["families"]
    assert not tunnel["exists"] and report["wireguard"] == []
    assert v4["route"] is None and v4["armed"] and v6["route"] is None and not v6["armed"]
    assert report["problems"] == [
        "tunnel wg0: interface missing",
        "tunnel wg0 ipv6: table 100 has no blackhole default route (not fail-closed)",
    ]
    lines = report["lines"]
    assert "  tunnel wg0: missing (no WireGuard interface of that name)" in lines
    assert "    ipv4: mark 0x1 -> rule 1000 -> table 100: no route, blackhole metric 100 (armed)" in lines
    assert "    ipv6: mark 0x1 -> rule 1000 -> table 100: no route, NO blackhole (not armed)" in lines
    assert "PROBLEM: tunnel wg0 ipv6: table 100 has no blackhole default route (not fail-closed)" in lines
    samples = parse_metrics(report["metrics"])
    assert metric(samples, "splitroute_tunnel_up", interface="wg0") == 0
    assert metric(samples, "splitroute_blackhole_armed", table="100", family="ipv4") == 1
    assert metric(samples, "splitroute_blackhole_armed", table="100", family="ipv6") == 0
    assert metric(samples, "splitroute_route_present", table="100", family="ipv4") == 0
    assert metric(samples, "splitroute_problems") == 2
    assert "splitroute_tunnel_last_handshake_seconds" not in names(samples)


def test_nothing_configured_even_with_other_provider_namespaces_on_the_machine():
    raw = load("empty")
    assert any(n["name"].startswith("srgw-") for n in json.loads(raw["netns"]["stdout"]))  # another host's, here
    report = status_report(raw, {"host": "bare"})
    assert not report["client"]["configured"] and not report["gateway"]["configured"]
    assert report["problems"] == [] and report["errors"] == [] and report["wireguard"] == []
    assert report["lines"][1:] == [
        "client: not configured (no nft table inet splitroute, no rules at priorities 1000-1099)",
        "gateway: not configured (no nft table inet splitroute_gateway, no rules at priorities 2000-2199)",
    ]
    samples = parse_metrics(report["metrics"])
    assert names(samples) == {
        "splitroute_status_timestamp_seconds", "splitroute_client_configured", "splitroute_gateway_configured",
        "splitroute_problems",
    }  # fmt: skip
    assert metric(samples, "splitroute_client_configured", host="bare") == 0


# ---------------------------------------------------------------- edge cases


def test_wg_and_nft_missing_are_reported_not_raised():
    raw = load("client")
    raw["wg"] = {"rc": 127, "stdout": "", "stderr": "/bin/bash: line 1: wg: command not found"}
    # what ansible.builtin.command returns when the program does not exist
    raw["nft_client"] = {"rc": 2, "stdout": "", "stderr": "", "msg": "[Errno 2] No such file or directory: b'nft'"}
    del raw["netns"]
    report = status_report(raw, {})
    assert report["errors"] == [
        "wg show all dump: /bin/bash: line 1: wg: command not found",
        "ip netns: not collected",
        "nft table inet splitroute: [Errno 2] No such file or directory: b'nft'",
    ]
    assert report["wireguard"] == []
    # the rules still show a client, whose table could not be read (not reported as missing)
    assert report["client"]["configured"] and not report["client"]["nft_table"]["present"]
    assert "client: rules in place but nft table inet splitroute is missing" not in report["problems"]
    assert "could not read: wg show all dump: /bin/bash: line 1: wg: command not found" in report["lines"]
    parse_metrics(report["metrics"])


def test_absent_client_table_with_its_rules_still_there():
    raw = load("client_down")
    raw["nft_client"] = load("empty")["nft_client"]
    report = status_report(raw, {})
    assert report["client"]["configured"] and report["errors"] == []
    assert report["client"]["rules"] == ["1000: from all fwmark 0x1 lookup 100"] * 2
    assert report["client"]["tunnels"] == []
    # the rules' table is still checked: the IPv6 blackhole is gone (client_down)
    assert report["problems"] == [
        "client: rules in place but nft table inet splitroute is missing",
        "table 100 ipv6 (rule 1000): no blackhole default route (not fail-closed)",
    ]
    assert "  ipv4, no tunnel's sets lead there: table 100: no route, blackhole metric 100 (armed)" in report["lines"]
    samples = parse_metrics(report["metrics"])
    assert metric(samples, "splitroute_blackhole_armed", table="100", family="ipv4") == 1
    assert metric(samples, "splitroute_blackhole_armed", table="100", family="ipv6") == 0
    assert metric(samples, "splitroute_nft_table_present", table="splitroute") == 0


def test_handshake_never_and_unknown_interface():
    dump = "wg7\t(hidden)\tpub=\t51000\toff\nwg7\tpeerA=\t(none)\t(none)\t(none)\t0\t0\t0\toff"
    raw = load("empty")
    raw["wg"] = {"rc": 0, "stdout": dump, "stderr": ""}
    report = status_report(raw, {"host": "h"})
    (wg,) = report["wireguard"]
    assert wg["last_handshake"] == 0 and wg["handshake_age"] is None and not wg["exists"]
    lines = report["lines"]
    assert (
        "other WireGuard interface wg7: missing, 1 peer (0 with a handshake), last handshake never, rx 0 B, tx 0 B"
        in lines
    )
    assert report["problems"] == ["wireguard wg7: wg lists it but this namespace has no such interface"]
    samples = parse_metrics(report["metrics"])
    assert metric(samples, "splitroute_tunnel_last_handshake_seconds", interface="wg7") == 0
    assert metric(samples, "splitroute_peer_last_handshake_seconds", interface="wg7", peer="peerA=") == 0
    assert metric(samples, "splitroute_tunnel_up", interface="wg7") == 0


def test_keys_in_an_unredacted_dump_are_never_read():
    dump = "wg0\t%s\tpub=\t51820\toff\nwg0\tpeer=\t%s\t198.51.100.1:51820\t10.0.0.2/32\t1700000000\t5\t6\t25" % (
        PRIVATE, PSK,
    )  # fmt: skip
    parsed = parse_wg_dump(dump)
    assert PRIVATE not in json.dumps(parsed) and PSK not in json.dumps(parsed)
    assert parsed["wg0"]["peers"][0]["persistent_keepalive"] == 25
    raw = load("client")
    raw["wg"] = {"rc": 0, "stdout": dump, "stderr": ""}
    report = status_report(raw, {})
    assert PRIVATE not in json.dumps(report) and PSK not in json.dumps(report)


def test_blackhole_below_the_tunnel_route_is_a_problem():
    raw = load("client")
    routes = json.loads(raw["routes4"]["stdout"])
    for route in routes:
        if route.get("type") == "blackhole":
            route["metric"] = 5
    raw["routes4"]["stdout"] = json.dumps(routes)
    report = status_report(raw, {})
    v4 = report["client"]["tunnels"][0]["families"][0]
    assert v4["armed"] and v4["shadowed"]
    assert report["problems"] == [
        "tunnel wg0 ipv4: the blackhole's metric is not above the tunnel route's in table 100"
    ]


def test_unreachable_default_counts_as_fail_closed():
    raw = load("client_down")
    routes = json.loads(raw["routes6"]["stdout"])
    routes.append({"type": "unreachable", "dst": "default", "dev": "lo", "table": "100", "metric": 100, "flags": []})
    raw["routes6"]["stdout"] = json.dumps(routes)
    v6 = status_report(raw, {})["client"]["tunnels"][0]["families"][1]
    assert v6["armed"] and v6["blackhole"] == {"type": "unreachable", "metric": 100}


def test_rule_with_a_mask_matches_the_mark_and_a_missing_rule_is_reported():
    raw = load("client")
    rules = json.loads(raw["rules4"]["stdout"])
    for rule in rules:
        if rule.get("fwmark"):
            rule.update(fwmark="0x1", fwmask="0xff")
    raw["rules4"]["stdout"] = json.dumps(rules)
    raw["rules6"]["stdout"] = json.dumps([r for r in json.loads(raw["rules6"]["stdout"]) if not r.get("fwmark")])
    report = status_report(raw, {})
    v4, v6 = report["client"]["tunnels"][0]["families"]
    assert v4["rule"] == {"priority": 1000, "text": "1000: from all fwmark 0x1/0xff lookup 100"}
    assert v6["rule"] is None and v6["table"] is None
    assert report["problems"] == ["tunnel wg0 ipv6: no ip rule for mark 0x1"]
    assert "    ipv6: mark 0x1 -> NO rule -> no table" in report["lines"]
    samples = parse_metrics(report["metrics"])
    assert metric(samples, "splitroute_rule_present", name="wg0", family="ipv6", table="") == 0
    assert metric(samples, "splitroute_rules", family="ipv6") == 0


def test_inventory_expectations_on_a_bare_host():
    report = status_report(
        load("empty"), {"client_tunnels": ["wg0"], "gateway_providers": ["vpnco"], "gateway_table_base": 300}
    )
    assert not report["client"]["configured"] and not report["gateway"]["configured"]
    assert report["problems"] == [
        "client: the inventory lists tunnel wg0, but the client role's table and rules are absent",
        "gateway: the inventory lists peers or providers, but the gateway role's table and rules are absent",
    ]
    assert [(p["name"], p["table"], p["netns"]) for p in report["gateway"]["providers"]] == [
        ("vpnco", "300", "srgw-vpnco")
    ]


def test_expected_provider_whose_namespace_and_rule_are_gone():
    raw = load("gateway")
    raw["netns"]["stdout"] = "[]"
    raw["rules4"]["stdout"] = json.dumps([r for r in json.loads(raw["rules4"]["stdout"]) if r["priority"] != 2100])
    report = status_report(raw, {"gateway_providers": ["vpnco"]})
    (prov,) = [p for p in report["gateway"]["providers"] if p["name"] == "vpnco"]
    assert prov["table"] == "200" and prov["netns_present"] is False and prov["rules"] == []
    assert "provider vpnco: namespace srgw-vpnco is missing" in report["problems"]
    assert "provider vpnco: no ip rule looks up table 200" in report["problems"]
    samples = parse_metrics(report["metrics"])
    assert metric(samples, "splitroute_netns_present", netns="srgw-vpnco") == 0
    assert metric(samples, "splitroute_rule_present", role="gateway", name="vpnco") == 0


def test_label_values_are_escaped():
    raw = load("client")
    # a host name and an interface name (Linux allows quotes and backslashes in both) that need escaping
    raw["wg"]["stdout"] = raw["wg"]["stdout"].replace("wg0\t", 'w"g\\0\t')
    text = status_report(raw, {"host": 'lab "a"\\b\nc'})["metrics"]
    samples = parse_metrics(text)  # a raw newline or quote would break a line out of the format
    assert 'host="lab \\"a\\"\\\\b\\nc"' in text
    assert metric(samples, "splitroute_tunnel_peers", interface='w\\"g\\\\0') == 1


def test_bad_input():
    with pytest.raises(AnsibleFilterError, match="dict of command results"):
        status_report(["not", "a", "dict"])
    raw = copy.deepcopy(load("client"))
    raw["rules4"]["stdout"] = "{not json"
    report = status_report(raw, None)
    assert "ip -4 rule: unreadable output" in report["errors"]


def test_filter_is_registered():
    assert FilterModule().filters() == {"status_report": status_report}
