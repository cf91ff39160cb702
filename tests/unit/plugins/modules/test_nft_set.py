"""splitroute.vpn.nft_set against the real kernel, inside throwaway network namespaces."""

from __future__ import annotations

import ipaddress
import json
import os

import pytest

BASE = {"table": "sr", "name": "s4", "type": "ipv4_addr", "create_table": True}


def args(ns, **kw):
    return dict(BASE, netns=ns, **kw)


def live_set(nsexec, table="sr", name="s4", family="inet"):
    proc = nsexec("nft", "-j", "list", "set", family, table, name, check=False)
    if proc.returncode != 0:
        return None
    for item in json.loads(proc.stdout)["nftables"]:
        if "set" in item:
            return item["set"]
    return None


def elem_values(s):
    out = []
    for e in s.get("elem", []):
        out.append(e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e)
    return out


def ruleset(nsexec):
    return nsexec("nft", "-j", "list", "ruleset").stdout


@pytest.mark.parametrize("backend", ["libnftables", "nft"])
def test_merged_creates_table_set_and_elements(netns, nsexec, four, module, backend):
    a = args(netns, elements=["198.51.100.7", "198.51.100.8"], backend=backend)
    result = four("nft_set", a)
    assert result["backend"] == ("libnftables" if backend == "libnftables" else "nft -j")
    assert sorted(elem_values(live_set(nsexec))) == ["198.51.100.7", "198.51.100.8"]
    assert result["diff"]["before"]["exists"] is False
    assert result["diff"]["after"]["elements"] == ["198.51.100.7", "198.51.100.8"]


def test_check_mode_creates_nothing(netns, nsexec, module):
    result = module("nft_set", args(netns, elements=["198.51.100.7"]), check=True)
    assert result["changed"] is True
    assert result["commands"][0] == {"add": {"table": {"family": "inet", "name": "sr"}}}
    assert json.loads(ruleset(nsexec))["nftables"][1:] == []


def test_merged_keeps_elements_added_at_run_time(netns, nsexec, four, module):
    a = args(netns, flags=["timeout"], timeout="1h", elements=["198.51.100.7"])
    four("nft_set", a)
    # what dnsmasq does when it resolves a listed name
    nsexec("nft", "add", "element", "inet", "sr", "s4", "{ 203.0.113.9 timeout 30m }")
    again = module("nft_set", a)
    assert again["changed"] is False
    assert sorted(elem_values(live_set(nsexec))) == ["198.51.100.7", "203.0.113.9"]
    grown = module("nft_set", dict(a, elements=["198.51.100.7", "198.51.100.9"]))
    assert grown["changed"] is True
    assert sorted(elem_values(live_set(nsexec))) == ["198.51.100.7", "198.51.100.9", "203.0.113.9"]


def test_replaced_manages_only_permanent_elements(netns, nsexec, four, module):
    base = args(netns, flags=["timeout"], elements=["198.51.100.1", "198.51.100.2"])
    module("nft_set", base)
    nsexec("nft", "add", "element", "inet", "sr", "s4", "{ 203.0.113.9 timeout 30m }")
    four("nft_set", dict(base, elements=["198.51.100.2", "198.51.100.3"], state="replaced"))
    assert sorted(elem_values(live_set(nsexec))) == ["198.51.100.2", "198.51.100.3", "203.0.113.9"]


def test_overridden_removes_everything_else(netns, nsexec, four, module):
    base = args(netns, flags=["timeout"], elements=["198.51.100.1", "198.51.100.2"])
    module("nft_set", base)
    nsexec("nft", "add", "element", "inet", "sr", "s4", "{ 203.0.113.9 timeout 30m }")
    four("nft_set", dict(base, elements=["198.51.100.2"], state="overridden"))
    assert elem_values(live_set(nsexec)) == ["198.51.100.2"]


def test_overridden_recreates_a_set_with_another_definition(netns, nsexec, four, module):
    module("nft_set", args(netns, elements=["198.51.100.1"]))
    changed = dict(BASE, netns=netns, flags=["interval"], elements=["198.51.100.0/24"], state="overridden")
    failed = module("nft_set", dict(changed, state="merged"), expect_fail=True)
    assert "another definition" in failed["msg"]
    assert elem_values(live_set(nsexec)) == ["198.51.100.1"]
    four("nft_set", changed)
    live = live_set(nsexec)
    assert live["flags"] == ["interval"]
    assert elem_values(live) == [{"prefix": {"addr": "198.51.100.0", "len": 24}}]


def test_deleted_and_flushed(netns, nsexec, four, module):
    module("nft_set", args(netns, elements=["198.51.100.1", "198.51.100.2", "198.51.100.3"]))
    four("nft_set", args(netns, elements=["198.51.100.2", "198.51.100.200"], state="deleted"))
    assert sorted(elem_values(live_set(nsexec))) == ["198.51.100.1", "198.51.100.3"]
    four("nft_set", args(netns, state="flushed"))
    assert elem_values(live_set(nsexec)) == []
    assert live_set(nsexec) is not None


def test_interval_sets_compare_coverage(netns, nsexec, four, module):
    a = args(netns, flags=["interval"], elements=["10.0.0.0/24", "10.0.1.0/24", "10.0.2.5"])
    four("nft_set", a)
    assert sorted(map(json.dumps, elem_values(live_set(nsexec)))) == sorted(
        map(json.dumps, [{"prefix": {"addr": "10.0.0.0", "len": 23}}, "10.0.2.5"])
    )
    # the same coverage written differently is no change
    same = module("nft_set", dict(a, elements=["10.0.0.0-10.0.1.255", "10.0.2.5/32"]), check=True)
    assert same["changed"] is False
    # deleting part of a prefix keeps the rest covered
    four("nft_set", dict(a, elements=["10.0.0.128/25"], state="deleted"))
    covered = set()
    for v in elem_values(live_set(nsexec)):
        if isinstance(v, dict) and "prefix" in v:
            net = ipaddress.ip_network("%s/%s" % (v["prefix"]["addr"], v["prefix"]["len"]))
        elif isinstance(v, dict):
            lo, hi = (ipaddress.ip_address(x) for x in v["range"])
            net = list(ipaddress.summarize_address_range(lo, hi))
        else:
            net = ipaddress.ip_network(v)
        for n in net if isinstance(net, list) else [net]:
            covered.update(str(h) for h in n) if n.num_addresses > 1 else covered.add(str(n.network_address))
    assert "10.0.0.127" in covered and "10.0.1.0" in covered and "10.0.2.5" in covered
    assert "10.0.0.128" not in covered and "10.0.0.255" not in covered


def test_ipv6_concat_mac_and_service_types(netns, nsexec, four):
    four("nft_set", args(netns, name="s6", type="ipv6_addr", elements=["2001:DB8::1", "2001:db8:0::2"]))
    four(
        "nft_set",
        args(netns, name="pairs", type="ipv4_addr . inet_service", elements=["10.4.0.7 . 443", "10.4.0.8 . 22"]),
    )
    four("nft_set", args(netns, name="macs", type="ether_addr", elements=["AA:BB:CC:00:11:22"]))
    four("nft_set", args(netns, name="ports", type="inet_service", flags=["interval"], elements=["53", "1000-2000"]))
    assert sorted(elem_values(live_set(nsexec, name="s6"))) == ["2001:db8::1", "2001:db8::2"]
    assert elem_values(live_set(nsexec, name="macs")) == ["aa:bb:cc:00:11:22"]


def test_comment_and_auto_merge_are_kept(netns, nsexec, four):
    a = args(
        netns,
        name="static",
        flags=["interval"],
        auto_merge=True,
        comment="split tunnel static",
        elements=["10.9.0.0/16"],
    )
    four("nft_set", a)
    text = nsexec("nft", "list", "set", "inet", "sr", "static").stdout
    assert "auto-merge" in text and 'comment "split tunnel static"' in text


def test_absent_deletes_only_the_set(netns, nsexec, four, module):
    module("nft_set", args(netns, elements=["198.51.100.1"]))
    module("nft_set", args(netns, name="other", elements=["198.51.100.2"]))
    four("nft_set", args(netns, state="absent"))
    assert live_set(nsexec) is None
    assert elem_values(live_set(nsexec, name="other")) == ["198.51.100.2"]


def test_absent_of_a_referenced_set_fails_and_changes_nothing(netns, nsexec, module):
    module("nft_set", args(netns, elements=["198.51.100.1"]))
    nsexec("nft", "add", "chain", "inet", "sr", "out", "{ type filter hook output priority 0; }")
    nsexec("nft", "add", "rule", "inet", "sr", "out", "ip daddr @s4 accept")
    failed = module("nft_set", args(netns, state="absent"), expect_fail=True)
    assert "nothing was changed" in failed["msg"]
    assert elem_values(live_set(nsexec)) == ["198.51.100.1"]


def test_gathered_reports_remaining_lifetime(netns, nsexec, module):
    module("nft_set", args(netns, flags=["timeout"], timeout="1h", elements=["198.51.100.1"]))
    result = module("nft_set", args(netns, state="gathered"))
    assert result["changed"] is False
    g = result["gathered"]
    assert g["type"] == "ipv4_addr" and g["timeout"] == 3600
    assert g["elements"][0]["value"] == "198.51.100.1"
    assert 3500 < g["elements"][0]["expires"] <= 3600
    missing = module("nft_set", args(netns, name="nope", state="gathered"))
    assert missing["gathered"] == {}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"elements": ["2001:db8::1"]}, "not an IPV4 address"),
        ({"elements": ["198.51.100.0/24"]}, "needs a set with the interval flag"),
        ({"elements": ["198.51.100.1\nflush ruleset"]}, "invalid elements"),
        ({"name": "bad name"}, "set name"),
        ({"table": "x;flush ruleset"}, "table name"),
        ({"timeout": "1h"}, "needs the timeout flag"),
        ({"timeout": "soon", "flags": ["timeout"]}, "not a duration"),
        ({"type": "ipv5_addr"}, "not supported"),
        ({"comment": 'a" ; flush ruleset ; "'}, "comment"),
        ({"create_table": False}, "does not exist"),
        ({"family": "ip", "type": "ipv6_addr"}, "cannot live in a table of family ip"),
        ({"type": "ipv4_addr . inet_service", "elements": ["10.0.0.1"]}, "components"),
    ],
)
def test_bad_input_fails_before_any_change(netns, nsexec, module, extra, message):
    before = ruleset(nsexec)
    failed = module("nft_set", args(netns, elements=["198.51.100.1"]) | extra, expect_fail=True)
    assert message in failed["msg"]
    assert ruleset(nsexec) == before


def test_missing_namespace_is_a_clear_error(module):
    failed = module("nft_set", args("srt-does-not-exist", elements=[]), expect_fail=True)
    assert "does not exist" in failed["msg"]


def test_round_trip_restores_the_start(netns, nsexec, module):
    start = ruleset(nsexec)
    module("nft_set", args(netns, elements=["198.51.100.1"]))
    module("nft_set", args(netns, state="absent"))
    nsexec("nft", "delete", "table", "inet", "sr")
    assert ruleset(nsexec) == start


@pytest.mark.parametrize("flags", [[], ["interval"]])
def test_hundred_thousand_elements(netns, nsexec, module, flags):
    net = ipaddress.ip_network("10.0.0.0/8")
    elements = [str(net.network_address + 3 * i) for i in range(100_000)]
    a = args(netns, flags=flags, elements=elements)
    first = module("nft_set", a)
    assert first["changed"] is True
    assert first["commands"][-1]["add"]["element"]["count"] == 100_000
    assert len(elem_values(live_set(nsexec))) == 100_000
    again = module("nft_set", a)
    assert again["changed"] is False


# --------------------------------------------------------------------------- bad input (issue 11)
FIVE = ["10.0.0.1 . 80", "10.0.0.2 . 80", "10.0.0.3 . 443", "10.0.1.0/24 . 22", "10.0.2.1 . 1000-2000"]


def comparable(s):
    """A listed set without what changes on its own: the handle and each element's remaining lifetime."""
    out = {k: v for k, v in s.items() if k not in ("handle", "elem")}
    out["elem"] = sorted(
        json.dumps(dict(e["elem"], expires=None) if isinstance(e, dict) and "elem" in e else e, sort_keys=True)
        for e in s.get("elem", [])
    )
    return out


@pytest.mark.parametrize("backend", ["libnftables", "nft"])
def test_overridden_refused_by_the_kernel_keeps_the_old_set(netns, nsexec, module, backend):
    """The set is recreated (new comment) and the kernel refuses the new elements: the old set, its five
    elements and their lifetimes are still there, because it was all one transaction."""
    start = args(netns, name="pairs", type="ipv4_addr . inet_service", flags=["interval", "timeout"], timeout="1h")
    start["backend"] = backend
    module("nft_set", dict(start, elements=FIVE))
    nsexec("nft", "add", "element", "inet", "sr", "pairs", "{ 10.0.3.1 . 53 timeout 30m }")  # as dnsmasq would
    before = live_set(nsexec, name="pairs")
    assert len(before["elem"]) == 6
    # Overlapping elements of an interval concatenation: nft and the module accept them, the kernel does not.
    refused = dict(start, comment="new", state="overridden", elements=["10.9.0.0/24 . 80", "10.9.0.0/25 . 80"])
    failed = module("nft_set", refused, expect_fail=True)
    assert "nothing was changed" in failed["msg"] and "File exists" in failed["msg"]
    assert failed["diff"]["before"]["elements"] == sorted([*FIVE, "10.0.3.1 . 53"])
    after = live_set(nsexec, name="pairs")
    assert comparable(after) == comparable(before)
    lifetimes = {json.dumps(e["elem"]["val"]): e["elem"]["expires"] for e in after["elem"]}
    assert 1700 < lifetimes[json.dumps({"concat": ["10.0.3.1", 53]})] <= 1800  # its own expiry, not reset


def test_size_below_the_element_count_fails_before_any_change(netns, nsexec, module):
    module("nft_set", args(netns, elements=["198.51.100.%d" % i for i in range(1, 6)]))
    before = ruleset(nsexec)
    over = args(netns, comment="x", size=1, state="overridden", elements=["198.51.100.1", "198.51.100.2"])
    failed = module("nft_set", over, expect_fail=True)
    assert "would hold 2 elements, more than its size 1" in failed["msg"]
    # a set that has a size is not overfilled either
    module("nft_set", args(netns, name="small", size=2, elements=["198.51.100.1"]))
    before = ruleset(nsexec)
    failed = module("nft_set", args(netns, name="small", elements=["198.51.100.2", "198.51.100.3"]), expect_fail=True)
    assert "would hold 3 elements, more than its size 2" in failed["msg"]
    assert ruleset(nsexec) == before


def test_inet_proto_names_and_numbers_are_one_element(netns, nsexec, four, module):
    a = args(netns, name="protos", type="inet_proto", elements=["tcp", "17", "ipv6-icmp"])
    four("nft_set", a)
    assert sorted(elem_values(live_set(nsexec, name="protos"))) == ["ipv6-icmp", "tcp", "udp"]  # as nft prints them
    same = module("nft_set", dict(a, elements=["6", "UDP", "58"], state="overridden"), check=True)
    assert same["changed"] is False
    gathered = module("nft_set", args(netns, name="protos", state="gathered"))["gathered"]
    assert sorted(e["value"] for e in gathered["elements"]) == ["17", "58", "6"]
    four("nft_set", args(netns, name="ranges", type="inet_proto", flags=["interval"], elements=["icmp-tcp", "udp"]))
    four("nft_set", args(netns, name="ranges", type="inet_proto", flags=["interval"], elements=["17"], state="deleted"))
    assert elem_values(live_set(nsexec, name="ranges")) == [{"range": [1, 6]}]
    failed = module("nft_set", dict(a, elements=["nosuchproto"]), expect_fail=True)
    assert "not a protocol number in 0-255 or a name from /etc/protocols" in failed["msg"]


def test_timeout_zero_is_no_default_lifetime(netns, nsexec, four, module):
    a = args(netns, flags=["timeout"], timeout=0, elements=["198.51.100.1"])
    four("nft_set", a)
    assert "timeout" not in live_set(nsexec)
    # with state=overridden, 0 takes a default lifetime away (it is asked for, not "whatever is there")
    module("nft_set", args(netns, name="timed", flags=["timeout"], timeout="1h"))
    four("nft_set", args(netns, name="timed", flags=["timeout"], timeout="0", state="overridden"))
    assert "timeout" not in live_set(nsexec, name="timed")


def test_empty_netns_is_refused(module):
    # check mode first: without the fix it would act (and report a change) in the test's own namespace
    for check in (True, False):
        failed = module("nft_set", args("", elements=["198.51.100.1"]), check=check, expect_fail=True)
        assert "netns '' is invalid" in failed["msg"]


def test_stale_netns_file_is_a_clear_error(module, tmp_path):
    name = "srt-stale-%s" % tmp_path.name[-8:]
    path = "/run/netns/%s" % name
    open(path, "w").close()
    try:
        failed = module("nft_set", args(name, elements=["198.51.100.1"]), expect_fail=True)
        assert "%s exists but is not a network namespace (a plain file" % path in failed["msg"]
        assert "ip netns delete %s" % name in failed["msg"]
    finally:
        os.unlink(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"table": ["sr"]}, "table: must be a string, not list"),
        ({"name": {"a": 1}}, "name: must be a string, not dict"),
        ({"comment": ["a"]}, "comment: must be a string, not list"),
        ({"comment": {"a": 1}}, "comment: must be a string, not dict"),
        ({"comment": True}, "comment: must be a string, not bool"),
        ({"netns": ["x"]}, "netns: must be a string, not list"),
        ({"elements": 5}, "elements: must be a list, not int"),
        ({"elements": "198.51.100.1,198.51.100.2"}, "elements: must be a list, not str"),
        ({"elements": [["198.51.100.1"]]}, "elements[0]: must be a string, not list"),
        ({"flags": "interval"}, "flags: must be a list, not str"),
        ({"type": 5}, "type must be a type name"),
        ({"type": {"ipv4_addr": 1}}, "type must be a type name"),
        ({"type": [["ipv4_addr"]]}, "type: a concatenation given as a list must be a list of type names"),
        ({"timeout": [60], "flags": ["timeout"]}, "timeout must be seconds or an nft duration"),
        ({"size": [1]}, "argument 'size' is of type list"),
        ({"size": 0}, "size 0 is invalid"),
    ],
)
def test_wrong_types_are_named(netns, nsexec, module, extra, message):
    before = ruleset(nsexec)
    failed = module("nft_set", args(netns, elements=["198.51.100.1"]) | extra, expect_fail=True)
    assert message in failed["msg"]
    assert "Traceback" not in json.dumps(failed)
    assert ruleset(nsexec) == before
