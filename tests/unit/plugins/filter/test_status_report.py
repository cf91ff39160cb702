"""splitroute.vpn.status_report: the status playbook's report and metrics, from real command outputs.

The fixtures under fixtures/status/ are what the playbook's commands printed in namespaces built
by fixtures/status/capture.py (wireguard-go, nftables 1.0.6, iproute2 6.1): a client whose tunnel
had shaken hands with a gateway, that gateway, the client after its tunnel went away and its IPv6
blackhole was deleted, and a namespace with nothing.
"""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from prometheus_text import parse_metrics  # tests/prometheus_text.py

from ansible_collections.splitroute.vpn.plugins.filter.status_report import FilterModule, status_report
from ansible_collections.splitroute.vpn.plugins.module_utils._status import parse_wg_dump

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "status"
INPUTS = ("now", "wg", "links", "rules4", "rules6", "routes4", "routes6", "netns", "nft_client", "nft_gateway")
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
        "splitroute_problems", "splitroute_status_unreadable",
    }  # fmt: skip
    assert metric(samples, "splitroute_client_configured", host="bare") == 0
    # one series per input, 0 when all of it was read: an alert can watch for > 0
    assert {dict(labels)["what"]: value for (n, labels), value in samples.items() if n.endswith("_unreadable")} == {
        key: 0 for key in (*INPUTS, "settings")
    }


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
    note = "ip -4 rule: the output is not JSON (Expecting property name enclosed in double quotes: line 1 column 2"
    assert [n["input"] for n in report["unreadable"]] == ["rules4"] and report["errors"] == []
    assert report["unreadable"][0]["text"].startswith(note)
    assert "unreadable: " + report["unreadable"][0]["text"] in report["lines"]
    assert report["client"]["configured"]  # from the IPv6 rules, which were read
    assert metric(parse_metrics(report["metrics"]), "splitroute_status_unreadable", what="rules4") == 1


def test_filter_is_registered():
    assert FilterModule().filters() == {"status_report": status_report}


# ---------------------------------------------------------------- odd command output: skipped, and said so
#
# Each case takes a real capture and puts one wrong kind of value in one place - one case per field and
# kind - and checks that the filter still returns a report whose textfile the strict parser reads, that
# no control character reaches the lines or the textfile, and that a piece it cannot read is named in
# one "unreadable" note and left out: the rest of the report is what it is without that piece.

KINDS = {"null": None, "int": 7, "str": "x", "list": [1], "dict": {"x": 1}, "ctrl": "wg\x01x"}
ANY = frozenset(KINDS)
RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# What the filter reads of each command's JSON, by path ("[*]" is any entry of a list), with the kinds
# it accepts there; the cases go one level below each of these, and a path not listed is never read
# (any kind there must leave the report exactly as it was).
READ = {
    "links": {
        "": set(), "[*]": set(), "[*].ifname": {"str"}, "[*].flags": set(), "[*].flags[*]": {"str", "ctrl"},
    },
    "rules": {
        "": set(), "[*]": set(), "[*].priority": {"int"}, "[*].src": {"str"}, "[*].srclen": {"int"},
        "[*].dst": {"str"}, "[*].dstlen": {"int"}, "[*].fwmark": {"int"}, "[*].fwmask": {"int"},
        "[*].iif": {"str"}, "[*].oif": {"str"}, "[*].table": {"int", "str"}, "[*].action": {"str"},
    },
    "routes": {
        "": set(), "[*]": set(), "[*].dst": {"str"}, "[*].table": {"int", "str"}, "[*].type": {"str"},
        "[*].dev": {"str"}, "[*].gateway": {"str"}, "[*].metric": {"int"},
    },
    "netns": {"": set(), "[*]": set(), "[*].name": {"str"}},
    "nft": {
        "": set(), ".nftables": set(), ".nftables[*]": {"dict"}, ".nftables[*].table": {"dict"},
        ".nftables[*].set": set(), ".nftables[*].set.name": {"str"}, ".nftables[*].set.type": {"str"},
        ".nftables[*].set.elem": {"list"}, ".nftables[*].chain": set(), ".nftables[*].chain.name": {"str"},
        ".nftables[*].rule": {"dict"}, ".nftables[*].rule.expr": set(), ".nftables[*].rule.expr[*]": {"dict"},
        # read where they match a set or set a mark; anything else is another kind of expression
        ".nftables[*].rule.expr[*].match": ANY, ".nftables[*].rule.expr[*].match.right": ANY,
        ".nftables[*].rule.expr[*].mangle": ANY, ".nftables[*].rule.expr[*].mangle.key": ANY,
        ".nftables[*].rule.expr[*].mangle.value": ANY,
    },
}  # fmt: skip
GROUP = {"links": "links", "rules4": "rules", "rules6": "rules", "routes4": "routes", "routes6": "routes",
         "netns": "netns", "nft_client": "nft", "nft_gateway": "nft"}  # fmt: skip


def json_cases():
    """(input, pattern, fixture, path) for the first place each pattern occurs, client capture first."""
    cases = {}
    for key, group in GROUP.items():
        for fixture in ("client", "gateway"):
            item = load(fixture)[key]
            if item["rc"] != 0 or not item["stdout"].strip():
                continue
            todo = [(json.loads(item["stdout"]), (), "")]
            while todo:
                value, path, pattern = todo.pop(0)
                cases.setdefault((key, pattern), (key, pattern, fixture, path))
                if pattern not in READ[group]:
                    continue  # never read: nothing under it is either
                if isinstance(value, dict):
                    todo += [(v, (*path, k), "%s.%s" % (pattern, k)) for k, v in value.items()]
                elif isinstance(value, list):
                    todo += [(v, (*path, i), pattern + "[*]") for i, v in enumerate(value)]
    return list(cases.values())


def put(data, path, value):
    if not path:
        return value
    data = copy.deepcopy(data)
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return data


def structure(report):
    """The report without what says how it was read (and the lines and textfile made from it all)."""
    return {k: v for k, v in report.items() if k not in ("unreadable", "lines", "metrics")}


def check(report):
    """What holds for every report: a textfile the strict parser reads, with one unreadable count per
    input; lines of plain text, one per unreadable piece; no raw control character anywhere in either."""
    samples = parse_metrics(report["metrics"])  # refuses a raw control character, too
    for key in (*INPUTS, "settings"):
        count = sum(1 for note in report["unreadable"] if note["input"] == key)
        assert metric(samples, "splitroute_status_unreadable", what=key) == count
    for line in report["lines"]:
        assert isinstance(line, str) and not RAW_CONTROL.search(line), line
    for note in report["unreadable"]:
        assert not RAW_CONTROL.search(note["text"]) and "unreadable: " + note["text"] in report["lines"]
    return samples


def one_note(report, key, *words):
    """The one note of the report, about KEY, naming each of WORDS."""
    assert [n["input"] for n in report["unreadable"]] == [key], report["unreadable"]
    text = report["unreadable"][0]["text"]
    for word in words:
        assert word in text, (word, text)
    return text


COMMANDS = {
    "now": "date", "wg": "wg show all dump", "links": "ip link", "rules4": "ip -4 rule", "rules6": "ip -6 rule",
    "routes4": "ip -4 route", "routes6": "ip -6 route", "netns": "ip netns",
    "nft_client": "nft table inet splitroute", "nft_gateway": "nft table inet splitroute_gateway",
}  # fmt: skip


def dropped(raw, key, piece):
    """RAW as if the command KEY had not printed the entry at PIECE (a path into its JSON)."""
    raw = copy.deepcopy(raw)
    data = json.loads(raw[key]["stdout"])
    node = data
    for step in piece[:-1]:
        node = node[step]
    del node[piece[-1]]
    raw[key]["stdout"] = json.dumps(data)
    return raw


@pytest.mark.parametrize(("key", "pattern", "fixture", "path"), json_cases(), ids=str)
def test_each_wrong_kind_in_each_json_field(key, pattern, fixture, path):
    raw = load(fixture)
    data = json.loads(raw[key]["stdout"])
    baseline = status_report(raw, {"host": "h"})
    accepted = READ[GROUP[key]].get(pattern, ANY)
    # the piece a wrong value spoils: an entry of ip's list, or of nft's "nftables" list (None: the output)
    depth = 2 if key.startswith("nft") else 1
    piece = path[:depth] if len(path) >= depth else None
    for kind, value in KINDS.items():
        mutated = copy.deepcopy(raw)
        mutated[key]["stdout"] = json.dumps(put(data, path, value))
        report = status_report(mutated, {"host": "h"})
        check(report)
        if kind in accepted:
            assert report["unreadable"] == [], (kind, report["unreadable"])
            if pattern not in READ[GROUP[key]]:
                assert report == baseline, kind  # never read
        elif piece is None:
            one_note(report, key, COMMANDS[key] + ": ")
        else:
            fields = [step for step in path[depth:] if isinstance(step, str)]
            one_note(report, key, "%s: %s[%d]" % (COMMANDS[key], "nftables" if depth == 2 else "", piece[-1]),
                     *fields[-1:])  # fmt: skip
            # only that piece is left out
            assert structure(report) == structure(status_report(dropped(raw, key, piece), {"host": "h"})), kind


# `wg show all dump` is text: the wrong kinds of a field are text too ("missing" leaves the field out).
WG_KINDS = {"missing": None, "int": "7", "str": "x", "list": "1,2", "empty": "", "ctrl": "wg\x01x"}
WORDS = {"int", "str", "list"}  # what reads as a name, a key, an endpoint or a list of addresses
NEVER = set(WG_KINDS) - {"missing"}  # the private and preshared keys: never read
WG_FIELDS = {
    # the gateway's dump: line 1 is wg0 itself, line 2 its first peer
    1: [("interface", WORDS), ("private key", NEVER), ("public key", WORDS), ("listen port", {"int"}),
        ("fwmark", {"int"})],
    2: [("interface", WORDS), ("public key", WORDS), ("preshared key", NEVER), ("endpoint", WORDS),
        ("allowed ips", WORDS), ("latest handshake", {"int"}), ("rx bytes", {"int"}), ("tx bytes", {"int"}),
        ("persistent keepalive", {"int"})],
}  # fmt: skip


@pytest.mark.parametrize(
    ("line", "index"), [(line, index) for line, fields in WG_FIELDS.items() for index in range(len(fields))]
)
def test_each_wrong_kind_in_each_wg_dump_field(line, index):
    raw = load("gateway")
    settings = {"host": "h", "gateway_peers": [["laptop", fixture_wg("gateway")[0][1], "10.4.0.10"]]}
    baseline = status_report(raw, settings)
    lines = raw["wg"]["stdout"].split("\n")
    name, accepted = WG_FIELDS[line][index]
    without = copy.deepcopy(raw)
    without["wg"]["stdout"] = "\n".join(lines[: line - 1] + lines[line:])
    for kind, value in WG_KINDS.items():
        fields = lines[line - 1].split("\t")
        if value is None:
            del fields[index]
        else:
            fields[index] = value
        mutated = copy.deepcopy(raw)
        mutated["wg"]["stdout"] = "\n".join(lines[: line - 1] + ["\t".join(fields)] + lines[line:])
        report = status_report(mutated, settings)
        check(report)
        if kind in accepted:
            assert report["unreadable"] == [], (kind, report["unreadable"])
            if accepted is NEVER:
                assert report == baseline
        else:
            one_note(report, "wg", "wg show all dump: line %d (interface " % line, "fields" if value is None else name)
            assert structure(report) == structure(status_report(without, settings)), kind


def test_each_wrong_kind_in_each_command_result():
    """Each field of each command's result as the playbook registers it, and the result itself."""
    raw = load("client")  # nft_gateway failed there (no such table): its stdout is not read
    for key in INPUTS:
        for field in (None, "rc", "stdout", "stderr"):
            for kind, value in KINDS.items():
                mutated = copy.deepcopy(raw)
                if field is None:
                    mutated[key] = value
                else:
                    mutated[key][field] = value
                report = status_report(mutated, {"host": "h"})
                check(report)
                failed = raw[key]["rc"] != 0
                # a failed command's stderr is its error (any text, escaped), a number is its exit status
                if field == "stderr" or (field == "stdout" and failed) or (field == "rc" and kind == "int"):
                    assert report["unreadable"] == [], (key, field, kind)
                    if field == "stderr" and failed and isinstance(value, str):
                        assert "%s: %s" % (COMMANDS[key], value.replace("\x01", "\\x01")) in report["errors"]
                    elif field == "rc":
                        first = raw[key]["stderr"].split("\n")[0] or "exit status 7"
                        absent = first.startswith("Error: No such file")  # nft: no such table, not an error
                        assert ("%s: %s" % (COMMANDS[key], first) in report["errors"]) is not absent
                    continue
                # the note names the field unless its text is what could not be read
                one_note(report, key, COMMANDS[key] + ": ", *([field] if field and not isinstance(value, str) else []))


SETTINGS_FIELDS = [
    # (path into the settings, how a note names it, the kinds it accepts: null is "not given")
    (("host",), "host", {"null", "str", "ctrl"}),  # the host label: any text, escaped where it is written
    (("client_table",), "client_table", {"null", "str"}),
    (("client_priority_base",), "client_priority_base", {"null", "int"}),
    (("client_tunnels",), "client_tunnels", {"null"}),
    (("client_tunnels", 0), "client_tunnels[0]", {"null", "str"}),
    (("gateway_table",), "gateway_table", {"null", "str"}),
    (("gateway_priority_base",), "gateway_priority_base", {"null", "int"}),
    (("gateway_table_base",), "gateway_table_base", {"null", "int"}),
    (("gateway_interface",), "gateway_interface", {"null", "str"}),
    (("gateway_peers",), "gateway_peers", {"null"}),
    (("gateway_peers", 0), "gateway_peers[0]", {"dict"}),  # a peer without a name is left out, as before
    (("gateway_peers", 0, 0), "gateway_peers[0].name", {"null", "str"}),
    (("gateway_peers", 0, 1), "gateway_peers[0].public_key", {"null", "str"}),
    (("gateway_peers", 0, 2), "gateway_peers[0].address", {"null", "str"}),
    (("gateway_peers", 1, "name"), "gateway_peers[1].name", {"null", "str"}),
    (("gateway_peers", 1, "public_key"), "gateway_peers[1].public_key", {"null", "str"}),
    (("gateway_peers", 1, "address"), "gateway_peers[1].address", {"null", "str"}),
    (("gateway_providers",), "gateway_providers", {"null"}),
    (("gateway_providers", 0), "gateway_providers[0]", {"null", "str"}),
]


@pytest.mark.parametrize(("path", "where", "accepted"), SETTINGS_FIELDS, ids=[w for _p, w, _a in SETTINGS_FIELDS])
def test_each_wrong_kind_in_each_setting(path, where, accepted):
    raw = load("gateway")
    settings = {
        "host": "gw-1", "client_table": "splitroute", "client_priority_base": 1000, "client_tunnels": ["wg0"],
        "gateway_table": "splitroute_gateway", "gateway_priority_base": 2000, "gateway_table_base": 200,
        "gateway_interface": "wg0", "gateway_providers": ["vpnco"],
        "gateway_peers": [
            ["laptop", fixture_wg("gateway")[0][1], "10.4.0.10"],
            {"name": "phone", "public_key": "", "address": "10.4.0.130"},
        ],
    }  # fmt: skip
    for kind, value in KINDS.items():
        report = status_report(raw, put(settings, path, value))
        check(report)
        if kind in accepted:
            assert report["unreadable"] == [], (kind, report["unreadable"])
        else:
            one_note(report, "settings", "settings: " + where)  # a list of one number: its [0]


def test_a_control_character_in_one_name_affects_only_that_interface():
    """One WireGuard interface named "wg\\x01" next to the client's tunnel wg0: the tunnel is up and
    reported as it is, and only the pieces with that name are left out, each named, escaped."""
    raw = load("client")
    # as `ip -j` prints it (iproute2 6.1 escapes only \\t \\n \\r \\b \\f \\\\ and " in a string)
    raw["links"]["stdout"] = raw["links"]["stdout"][:-1] + (
        ',{"ifindex":9,"ifname":"wg\x01","flags":["POINTOPOINT","NOARP","UP","LOWER_UP"],"mtu":1420}]'
    )
    raw["routes6"]["stdout"] = raw["routes6"]["stdout"][:-1] + (
        ',{"dst":"fe80::/64","dev":"wg\x01","protocol":"kernel","metric":256,"flags":[],"pref":"medium"}]'
    )
    with pytest.raises(ValueError, match="Invalid control character"):
        json.loads(raw["links"]["stdout"])  # not JSON to a strict reader
    # as `wg show all dump` prints it (the name as it is)
    raw["wg"]["stdout"] += "\nwg\x01\t(hidden)\tpub=\t51821\toff\nwg\x01\tpeer=\t(none)\t(none)\t(none)\t0\t0\t0\toff"
    clean = status_report(load("client"), {"host": "laptop-1"})
    routes = len(json.loads(load("client")["routes6"]["stdout"]))  # the index of the one added
    report = status_report(raw, {"host": "laptop-1"})
    samples = check(report)

    assert structure(report) == structure(clean)
    (tunnel,) = report["client"]["tunnels"]
    assert tunnel["name"] == "wg0" and tunnel["up"] and report["problems"] == [] and report["errors"] == []
    assert [(n["input"], n["text"]) for n in report["unreadable"]] == [
        ("wg", "wg show all dump: line 3 (interface 'wg\\x01'): interface: 'wg\\x01' has a control character"),
        ("wg", "wg show all dump: line 4 (interface 'wg\\x01'): interface: 'wg\\x01' has a control character"),
        ("links", "ip link: [3] (interface 'wg\\x01'): ifname: 'wg\\x01' has a control character"),
        ("routes6", "ip -6 route: [%d] (dst 'fe80::/64'): dev: 'wg\\x01' has a control character" % routes),
    ]
    assert report["lines"][0].startswith(
        "laptop-1: client configured, gateway not configured, no problems, 4 unreadable pieces skipped (at "
    )
    assert report["lines"][1:-4] == clean["lines"][1:]
    assert metric(samples, "splitroute_tunnel_up", interface="wg0") == 1
    assert metric(samples, "splitroute_status_unreadable", what="wg") == 2
    assert metric(samples, "splitroute_status_unreadable", what="links") == 1
    assert metric(samples, "splitroute_status_unreadable", what="routes6") == 1
    assert {labels for (_n, labels), _v in samples.items()} >= {labels for (_n, labels), _v in
                                                                parse_metrics(clean["metrics"]).items()}  # fmt: skip


def test_control_characters_in_the_settings_are_escaped_in_the_lines_and_the_textfile():
    raw = load("client")
    report = status_report(raw, {"host": "lab\x01\x1b[31m\u2028b", "client_tunnels": ["wg0", "wg\x1c1"]})
    samples = check(report)
    assert report["lines"][0].startswith("lab\\x01\\x1b[31m\\u2028b: client configured")
    assert metric(samples, "splitroute_problems", host="lab\\\\x01\\\\x1b[31m\\\\u2028b") == 0
    assert one_note(report, "settings") == "settings: client_tunnels[1]: 'wg\\x1c1' has a control character"
    assert [t["name"] for t in report["client"]["tunnels"]] == ["wg0"]


def test_output_of_any_shape_is_read_or_noted():
    """Shapes no field-by-field case makes: deep nesting, huge numbers, a line break inside a name."""
    raw = load("client")
    raw["rules4"]["stdout"] = "[" * 100000 + "]" * 100000
    raw["routes4"]["stdout"] = '[{"dst":"default","table":"100","metric":%s}]' % ("9" * 5000)
    raw["wg"]["stdout"] += "\nwg\x1c0\t(hidden)\tpub=\t1\toff\n\n" + "\t".join(
        ["wg1", "pub=", "(none)", "(none)", "(none)", "9" * 23, "0", "0", "off"]
    )
    raw["now"]["stdout"] = "1e9"
    report = status_report(raw, {"client_priority_base": "9" * 5000})
    check(report)
    assert {n["input"] for n in report["unreadable"]} == {"rules4", "routes4", "wg", "now", "settings"}


def test_the_failover_state_shows_the_exit_in_use_the_health_of_each_exit_and_the_switches():
    raw = load("client")
    now = int(raw["now"]["stdout"])
    raw["failover"] = {
        "groups": {
            "wg0": {"exit": "wg1", "switches": 2, "since": now - 30, "reason": "wg0 is down: icmp 10.99.0.1: lost"},
            "wg2": {"exit": None, "switches": 1, "since": now - 5, "reason": "wg2: lost"},
        },
        "exits": {
            "wg0": {"healthy": False, "failures": 7, "rtt": None, "reason": "icmp 10.99.0.1: no answer in 1s"},
            "wg1": {"healthy": True, "failures": 0, "rtt": 0.0123, "reason": "ok"},
            "wg\n9": "not a state",
        },
        "endpoints": {
            "wg0": {"host": "vpn.example.net", "current": "198.51.100.21", "looked_up": now - 40, "changes": 1,
                    "error": None},
            "wg3": {"host": "gone.example.net", "current": None, "looked_up": now - 10, "changes": 0,
                    "error": "gone.example.net does not resolve"},
            "wg4": {"no": "host"},
        },
    }  # fmt: skip
    report = status_report(raw, {"host": "laptop-1"})
    assert report["failover"]["groups"][0] == {
        "tunnel": "wg0", "kind": "tunnel", "exit": "wg1", "switches": 2, "since": now - 30,
        "reason": "wg0 is down: icmp 10.99.0.1: lost",
    }  # fmt: skip
    assert report["problems"] == [
        "tunnel wg2: no exit is healthy, its traffic is blackholed (wg2: lost)",
        "tunnel wg3: its endpoint name: gone.example.net does not resolve",
    ]
    assert "  endpoint of wg0: vpn.example.net at 198.51.100.21, looked up again 40 s ago, 1 change" in report["lines"]
    assert (
        "  endpoint of wg3: gone.example.net at (none), looked up again 10 s ago, 0 changes,"
        " last error: gone.example.net does not resolve"
    ) in report["lines"]
    lines = report["lines"]
    assert "  failover wg0: by wg1 since 30 s ago, 2 switches (wg0 is down: icmp 10.99.0.1: lost)" in lines
    assert "  failover wg2: by its BLACKHOLE (no exit is healthy) since 5 s ago, 1 switch (wg2: lost)" in lines
    assert "  exit wg1: healthy, probe 12 ms, 0 failed checks" in lines
    assert "  exit wg0: DOWN, 7 failed checks, last check: icmp 10.99.0.1: no answer in 1s" in lines
    assert any(n["input"] == "failover" for n in report["unreadable"])
    samples = parse_metrics(report["metrics"])
    assert metric(samples, "splitroute_failover_exit", tunnel="wg0", exit="wg1") == 1
    assert metric(samples, "splitroute_failover_exit", tunnel="wg2", exit="") == 1
    assert metric(samples, "splitroute_failover_switches_total", tunnel="wg0") == 2
    assert metric(samples, "splitroute_exit_healthy", exit="wg0") == 0
    assert metric(samples, "splitroute_exit_healthy", exit="wg1") == 1
    assert metric(samples, "splitroute_exit_probe_rtt_milliseconds", exit="wg1") == 12
    assert metric(samples, "splitroute_exit_check_failures", exit="wg0") == 7
    assert "splitroute_exit_probe_rtt_milliseconds" not in {n for n, lab in samples if ("exit", "wg0") in lab}
    assert metric(samples, "splitroute_endpoint_changes_total", tunnel="wg0", name="vpn.example.net") == 1
    assert metric(samples, "splitroute_endpoint_resolves", tunnel="wg0", name="vpn.example.net") == 1
    assert metric(samples, "splitroute_endpoint_resolves", tunnel="wg3", name="gone.example.net") == 0


def test_the_dns_bypass_counters_are_shown_and_counted():
    raw = load("client")
    data = json.loads(raw["nft_client"]["stdout"])
    table = next(i["table"] for i in data["nftables"] if "table" in i)
    for name, packets in (("bypass_dot", 3), ("bypass_doh", 0), ("bypass_quic", 12)):
        data["nftables"].append({"counter": {"family": "inet", "name": name, "table": table["name"], "handle": 9,
                                             "packets": packets, "bytes": 60 * packets}})  # fmt: skip
    data["nftables"].append({"counter": {"name": ["not", "a", "name"]}})
    raw["nft_client"]["stdout"] = json.dumps(data)
    report = status_report(raw, {"host": "laptop-1"})
    assert report["client"]["bypass"] == {"doh": 0, "dot": 3, "quic": 12}
    assert "  dns bypass rejected: doh 0, dot 3, quic 12 (packets)" in report["lines"]
    assert any(n["input"] == "nft_client" for n in report["unreadable"])
    samples = parse_metrics(report["metrics"])
    assert metric(samples, "splitroute_dns_bypass_rejected_total", block="dot") == 3
    assert metric(samples, "splitroute_dns_bypass_rejected_total", block="quic") == 12
    # none rejected (or every part off): no line
    assert not [line for line in status_report(load("client"), {})["lines"] if "dns bypass" in line]
