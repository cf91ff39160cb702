"""splitroute.vpn.policy_rule against the real kernel, inside throwaway network namespaces.

Every stateful case runs under the venv's pyroute2 (0.9) and under Debian's
/usr/bin/python3 with python3-pyroute2 (0.7), the one managed Debian 12 hosts have.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import SYSTEM_PYTHON, run_four, run_module

PYTHONS = [None, SYSTEM_PYTHON]
PY_IDS = ["pyroute2-venv", "pyroute2-debian"]

CLIENT = {
    "rules": [{"priority": 1000, "fwmark": "0x1", "table": "100"}],
    "routes": [
        {"table": "100", "dest": "default", "dev": "wg0", "metric": 10},
        {"table": "100", "dest": "default", "type": "blackhole", "metric": 100},
    ],
}


@pytest.fixture
def wgns(netns):
    """The namespace with an interface named wg0 (a veth: this kernel loads no dummy module)."""
    subprocess.run(["ip", "-n", netns, "link", "add", "wg0", "type", "veth", "peer", "name", "wg0-peer"], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "wg0", "up"], check=True)
    return netns


def ip(ns, *args):
    return subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, check=True).stdout


def rules(ns, family="-4"):
    return [line.strip() for line in ip(ns, family, "rule").splitlines()]


def table(ns, family="-4", number="100"):
    out = subprocess.run(
        ["ip", "-n", ns, family, "route", "show", "table", number], capture_output=True, text=True, check=False
    )
    return [line.strip() for line in out.stdout.splitlines()]


@pytest.mark.parametrize("python", PYTHONS, ids=PY_IDS)
def test_client_data_path_merged_then_deleted(wgns, python):
    args = dict(CLIENT, netns=wgns)
    result = run_four("policy_rule", args, python=python)
    assert "add ip -4 rule priority 1000 from all fwmark 0x1/0xffffffff lookup 100" in result["commands"]
    assert "1000:\tfrom all fwmark 0x1 lookup 100".replace("\t", " ") in [r.replace("\t", " ") for r in rules(wgns)]
    assert any("fwmark 0x1 lookup 100" in r for r in rules(wgns, "-6"))
    assert table(wgns) == ["default dev wg0 scope link metric 10 linkdown", "blackhole default metric 100"] or table(
        wgns
    ) == ["default dev wg0 scope link metric 10", "blackhole default metric 100"]
    assert any(line.startswith("blackhole default") for line in table(wgns, "-6"))
    run_four("policy_rule", dict(args, state="deleted"), python=python)
    assert not any("lookup 100" in r for r in rules(wgns) + rules(wgns, "-6"))
    assert table(wgns) == [] and table(wgns, "-6") == []
    # the kernel's own rules are still there
    assert any("lookup main" in r for r in rules(wgns))


def test_blackhole_fails_closed_when_the_tunnel_route_goes(wgns):
    run_module("policy_rule", dict(CLIENT, netns=wgns))
    # the uplink: main table's default route, which marked traffic must never take
    subprocess.run(["ip", "-n", wgns, "addr", "add", "10.98.0.1/24", "dev", "wg0-peer"], check=True)
    subprocess.run(["ip", "-n", wgns, "link", "set", "wg0-peer", "up"], check=True)
    subprocess.run(["ip", "-n", wgns, "route", "add", "default", "via", "10.98.0.2"], check=True)
    subprocess.run(["ip", "-n", wgns, "addr", "add", "10.99.0.1/24", "dev", "wg0"], check=True)

    def route_get(*extra):
        cmd = ["ip", "-n", wgns, "route", "get", "198.51.100.7", *extra]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    assert "dev wg0 " in route_get("mark", "1").stdout
    assert "dev wg0-peer" in route_get().stdout
    subprocess.run(["ip", "-n", wgns, "link", "set", "wg0", "down"], check=True)  # the tunnel goes down
    down = route_get("mark", "1")
    assert down.returncode != 0 and "Invalid argument" in down.stderr  # the kernel's answer for a blackhole
    assert "wg0-peer" not in down.stdout
    assert "dev wg0-peer" in route_get().stdout  # unmarked traffic is unaffected


@pytest.mark.parametrize("python", PYTHONS, ids=PY_IDS)
def test_all_selectors_round_trip(wgns, python):
    args = {
        "netns": wgns,
        "rules": [
            {"priority": 900, "from": "10.4.0.0/24", "to": "10.4.0.0/24", "table": "main"},
            {"priority": 910, "from": "10.4.0.128/25", "table": "200"},
            {"priority": 920, "uidrange": "1001-1002", "table": "100", "family": "4"},
            {"priority": 930, "ipproto": "udp", "dport": "53", "table": "100", "family": "6"},
            {"priority": 940, "ipproto": "tcp", "sport": "1000-2000", "iif": "lo", "table": "100"},
            {"priority": 950, "oif": "wg0", "fwmark": "0x10", "fwmask": "0xf0", "table": "100", "family": "4"},
            {"priority": 960, "fwmark": "51820", "invert": True, "table": "51820", "family": "4"},
            {"priority": 970, "table": "main", "suppress_prefixlength": 0, "family": "4"},
            {"priority": 980, "to": "2001:db8::/32", "action": "unreachable"},
            {"priority": 990, "to": "203.0.113.0/24", "action": "prohibit"},
            {"priority": 995, "to": "198.51.100.0/24", "action": "blackhole"},
        ],
        "routes": [
            {"table": "200", "dest": "198.51.100.0/24", "via": "10.99.0.2", "metric": 5},
            {"table": "200", "dest": "2001:db8:1::/48", "dev": "wg0"},
            {"table": "200", "dest": "default", "type": "unreachable", "family": "6"},
        ],
    }
    subprocess.run(["ip", "-n", wgns, "addr", "add", "10.99.0.1/24", "dev", "wg0"], check=True)
    run_four("policy_rule", args, python=python)
    text = "\n".join(rules(wgns) + rules(wgns, "-6"))
    for fragment in (
        "from 10.4.0.0/24 to 10.4.0.0/24 lookup main",
        "uidrange 1001-1002 lookup 100",
        "ipproto udp dport 53 lookup 100",
        "iif lo ipproto tcp sport 1000-2000 lookup 100",
        "fwmark 0x10/0xf0 oif wg0 lookup 100",
        "not from all fwmark 0xca6c lookup 51820",
        "lookup main suppress_prefixlength 0",
        "to 2001:db8::/32 unreachable",
        "to 203.0.113.0/24 prohibit",
        "to 198.51.100.0/24 blackhole",
    ):
        assert fragment in text, fragment
    gathered = run_module(
        "policy_rule", {"netns": wgns, "scope": {"priorities": "900-999"}, "state": "gathered"}, python=python
    )
    assert gathered["changed"] is False
    assert len(gathered["gathered"]["rules"]) == 12
    run_four(
        "policy_rule",
        {"netns": wgns, "scope": {"priorities": "900-999", "tables": ["200"]}, "state": "deleted"},
        python=python,
    )


def test_overridden_touches_only_its_scope(wgns, four, module):
    module("policy_rule", dict(CLIENT, netns=wgns))
    # somebody else's rules and tables
    subprocess.run(["ip", "-n", wgns, "rule", "add", "priority", "500", "fwmark", "0x2", "lookup", "300"], check=True)
    subprocess.run(["ip", "-n", wgns, "route", "add", "blackhole", "default", "table", "300"], check=True)
    subprocess.run(["ip", "-n", wgns, "rule", "add", "priority", "1050", "fwmark", "0x9", "lookup", "100"], check=True)
    args = {
        "netns": wgns,
        "scope": {"priorities": "1000-1099", "tables": ["100"]},
        "rules": [{"priority": 1001, "fwmark": "0x1", "table": "100"}],
        "routes": [{"table": "100", "dest": "default", "type": "blackhole", "metric": 100}],
        "state": "overridden",
    }
    four("policy_rule", args)
    v4 = " ".join(rules(wgns))
    assert "1001:" in v4 and "1000:" not in v4 and "1050:" not in v4
    assert "500:" in v4 and "lookup 300" in v4
    assert table(wgns, number="300") == ["blackhole default"]
    assert table(wgns) == ["blackhole default metric 100"]


def test_overridden_without_scope_is_refused(wgns, module):
    failed = module("policy_rule", dict(CLIENT, netns=wgns, state="overridden"), expect_fail=True)
    assert "needs scope" in failed["msg"]


def test_replaced_swaps_the_rules_at_a_priority(wgns, four, module):
    module("policy_rule", dict(CLIENT, netns=wgns))
    four(
        "policy_rule",
        {"netns": wgns, "rules": [{"priority": 1000, "fwmark": "0x2", "table": "100"}], "state": "replaced"},
    )
    v4 = " ".join(rules(wgns))
    assert "fwmark 0x2 lookup 100" in v4 and "fwmark 0x1 " not in v4


def test_table_names_go_to_rt_tables(wgns, module, tmp_path):
    path = "/etc/iproute2/rt_tables"
    before = open(path).read() if __import__("os").path.exists(path) else None
    try:
        args = dict(CLIENT, netns=wgns, table_names={"srtest": 4242})
        args["rules"] = [{"priority": 1000, "fwmark": "0x1", "table": "srtest"}]
        run_four("policy_rule", args)
        assert "4242\tsrtest" in open(path).read()
        assert "lookup srtest" in " ".join(rules(wgns))
        clash = module("policy_rule", dict(args, table_names={"srtest": 4243}), expect_fail=True)
        assert "already id 4242" in clash["msg"]
    finally:
        if before is None:
            __import__("os").unlink(path)
        else:
            open(path, "w").write(before)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"rules": [{"fwmark": "1", "table": "100"}]}, "rules[1].priority: is required"),
        (
            {"rules": [{"priority": 1, "from": "10.0.0.1/24", "table": "100"}]},
            "rules[1].from '10.0.0.1/24' is invalid: 10.0.0.1/24 has host bits set",
        ),
        (
            {"rules": [{"priority": 1, "from": "10.0.0.0/24", "to": "2001:db8::/32", "table": "100"}]},
            "rules[1]: addresses of both IPv4 and IPv6",
        ),
        (
            {"rules": [{"priority": 1, "from": "10.0.0.0/24", "family": "6", "table": "100"}]},
            "rules[1].family: 6 does not match",
        ),
        ({"rules": [{"priority": 1, "dport": "53", "table": "100"}]}, "rules[1].dport: needs ipproto"),
        ({"rules": [{"priority": 1, "iif": "a-very-long-interface-name", "table": "100"}]}, "rules[1].iif 'a-very"),
        ({"rules": [{"priority": 1, "table": "nosuchtable"}]}, "rules[1].table: 'nosuchtable' is neither"),
        (
            {"rules": [{"priority": 1, "action": "blackhole", "table": "100"}]},
            "rules[1]: table only goes with action lookup",
        ),
        ({"rules": [{"priority": 1, "fwmark": "0x1\nflush", "table": "100"}]}, "rules[1].fwmark: must be a number"),
        ({"routes": [{"table": "100", "dest": "default"}]}, "routes[0]: a unicast route needs dev or via"),
        ({"routes": [{"table": "100", "dest": "default", "dev": "nosuch0"}]}, "does not exist"),
        (
            {"routes": [{"table": "100", "dest": "default", "type": "blackhole", "dev": "wg0"}]},
            "routes[0]: a blackhole route takes no dev",
        ),
        (
            {"routes": [{"table": "100", "dest": "10.0.0.0/33", "dev": "wg0"}]},
            "routes[0].dest '10.0.0.0/33' is invalid",
        ),
        ({"table_names": {"bad name": 7}}, "table name"),
        ({"table_names": {"x": 254}}, "table_names.x: table id 254 is reserved (main)"),
        ({"scope": {"priorities": "9-1"}, "state": "overridden"}, "scope.priorities: '9-1' starts above its end"),
    ],
)
def test_bad_input_fails_before_any_change(wgns, module, args, message):
    before = rules(wgns) + rules(wgns, "-6")
    valid_first = {"rules": [{"priority": 1, "fwmark": "0x5", "table": "100"}] + args.get("rules", [])}
    failed = module(
        "policy_rule",
        dict(args, netns=wgns, **{k: v for k, v in valid_first.items() if "rules" in args}),
        expect_fail=True,
    )
    assert message in failed["msg"]
    assert rules(wgns) + rules(wgns, "-6") == before


# --------------------------------------------------------------------------- issue 11: bad input


def show(ns):
    """Everything a run could touch: the rules and tables 100 and main, both families."""
    return {
        "rules": rules(ns) + rules(ns, "-6"),
        "100": table(ns) + table(ns, "-6"),
        "main": table(ns, number="main") + table(ns, "-6", number="main"),
    }


@pytest.fixture
def tunnel(wgns):
    """wg0 with carrier (so the kernel checks gateways), 10.99.0.1/24, and the client's table 100."""
    subprocess.run(["ip", "-n", wgns, "link", "set", "wg0-peer", "up"], check=True)
    subprocess.run(["ip", "-n", wgns, "addr", "add", "10.99.0.1/24", "dev", "wg0"], check=True)
    run_module("policy_rule", dict(CLIENT, netns=wgns))
    return wgns


# 1. addresses: no scope id, except a link-local via with its interface


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"rules": [{"priority": 5, "from": "fd00::%x\nX/64", "table": "100"}]}, "rules[0].from"),
        ({"rules": [{"priority": 5, "to": "fd00::1%wg0", "table": "100"}]}, "rules[0].to"),
        ({"routes": [{"table": "100", "dest": "fd00::1%wg0", "dev": "wg0"}]}, "routes[0].dest"),
        ({"routes": [{"table": "100", "dest": "default", "via": "fd00::1%wg0"}]}, "routes[0].via"),
        ({"routes": [{"table": "100", "dest": "default", "via": "fe80::1%x\nX"}]}, "routes[0].via interface"),
    ],
)
def test_scope_ids_are_refused(tunnel, module, args, message):
    before = show(tunnel)
    failed = module("policy_rule", dict(args, netns=tunnel, state="replaced"), expect_fail=True)
    assert failed["msg"].startswith(message), failed["msg"]
    assert "\n" not in failed["msg"].split("'")[0]
    assert show(tunnel) == before


def test_link_local_via_takes_its_interface_from_the_scope(tunnel):
    args = {"netns": tunnel, "routes": [{"table": "100", "dest": "default", "via": "fe80::1%wg0", "metric": 20}]}
    result = run_four("policy_rule", args)
    assert "add ip -6 route table 100 default via fe80::1 dev wg0 metric 20" in result["commands"]
    assert any(line.startswith("default via fe80::1 dev wg0 metric 20") for line in table(tunnel, "-6"))
    # the same route written with dev is the same route
    same = run_module("policy_rule", {"netns": tunnel, "routes": [dict(args["routes"][0], dev="wg0")]})
    assert same["changed"] is False


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"via": "fe80::1%fzq0"}, "interface fzq0 does not exist"),
        (
            {"via": "fe80::1%wg0", "dev": "wg0-peer"},
            "routes[0].via: fe80::1%wg0 names interface wg0, but dev is wg0-peer",
        ),
        ({"via": "fe80::1"}, "routes[0].via: fe80::1 is link-local: give dev"),
    ],
)
def test_link_local_via_fails_before_anything_is_deleted(tunnel, module, route, message):
    before = show(tunnel)
    args = {"netns": tunnel, "routes": [dict(route, table="100", dest="default", metric=10)], "state": "replaced"}
    failed = module("policy_rule", args, expect_fail=True)
    assert message in failed["msg"]
    assert "commands_done" not in failed
    assert show(tunnel) == before


# 2. the kernel's tables and rules


@pytest.mark.parametrize("state", ["overridden", "deleted"])
@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({"tables": ["100", "254"]}, "scope.tables[1]: '254' is the kernel's table main"),
        ({"tables": ["local"]}, "scope.tables[0]: 'local' is the kernel's table local"),
        ({"tables": [253]}, "scope.tables[0]: 253 is the kernel's table default"),
        ({"priorities": "0-199"}, "scope.priorities: priorities 0-199 are outside"),
        ({"priorities": "32600-32799"}, "scope.priorities: priorities 32600-32799 include the kernel's rule 32766"),
        ({"priorities": 32767}, "scope.priorities: priorities 32767-32767 include the kernel's rule 32767"),
    ],
)
def test_a_scope_never_holds_the_kernels_tables_or_rules(tunnel, module, state, scope, message):
    subprocess.run(["ip", "-n", tunnel, "route", "add", "default", "via", "10.99.0.2"], check=True)
    before = show(tunnel)
    failed = module("policy_rule", {"netns": tunnel, "scope": scope, "state": state}, expect_fail=True)
    assert message in failed["msg"]
    assert show(tunnel) == before


def test_client_absent_with_a_table_base_near_main_deletes_nothing(tunnel, module):
    """splitroute_client_table_base 250: the absent scope 250-259 reaches main."""
    subprocess.run(["ip", "-n", tunnel, "route", "add", "default", "via", "10.99.0.2"], check=True)
    before = show(tunnel)
    scope = {"priorities": "1000-1099", "tables": [str(t) for t in range(250, 260)]}
    failed = module("policy_rule", {"netns": tunnel, "scope": scope, "state": "deleted"}, expect_fail=True)
    assert "scope.tables[3]: '253' is the kernel's table default" in failed["msg"]
    assert show(tunnel) == before and "default via 10.99.0.2 dev wg0" in before["main"]


@pytest.mark.parametrize(
    "args",
    [
        {"rules": [{"priority": 32766, "table": "main"}]},
        {"routes": [{"table": "main", "dest": "default", "via": "10.99.0.2"}]},
    ],
)
def test_replaced_refuses_the_kernels_rules_and_tables(tunnel, module, args):
    before = show(tunnel)
    failed = module("policy_rule", dict(args, netns=tunnel, state="replaced"), expect_fail=True)
    assert "is the kernel's" in failed["msg"] and "Only state deleted" in failed["msg"]
    assert show(tunnel) == before


def test_deleted_removes_the_kernels_own_only_when_named_exactly(tunnel, module):
    subprocess.run(["ip", "-n", tunnel, "route", "add", "default", "via", "10.99.0.2"], check=True)
    # patterns that match the kernel's entries, but do not name them: nothing of the kernel's goes
    for pattern in (
        {"rules": [{"table": "main"}]},
        {"rules": [{"priority": 32766}]},
        {"routes": [{"table": "main", "dest": "default"}]},
        {"routes": [{"table": "main", "dest": "10.99.0.0/24"}]},
    ):
        result = module("policy_rule", dict(pattern, netns=tunnel, state="deleted"))
        assert result["changed"] is False, (pattern, result["commands"])
    assert "32766:\tfrom all lookup main" in ip(tunnel, "-4", "rule")
    assert "default via 10.99.0.2 dev wg0" in table(tunnel, number="main")
    # named exactly, they go
    named = {
        "rules": [{"priority": 32767, "table": "default", "family": "4"}],
        "routes": [{"table": "main", "dest": "default", "via": "10.99.0.2", "metric": 0}],
        "state": "deleted",
        "netns": tunnel,
    }
    run_four("policy_rule", named)
    assert "32767:" not in ip(tunnel, "-4", "rule") and "32766:" in ip(tunnel, "-4", "rule")
    assert "default via 10.99.0.2 dev wg0" not in table(tunnel, number="main")


# 3. no half-apply: the kernel refuses a gateway it cannot reach


@pytest.mark.parametrize(
    ("routes", "how"),
    [
        # the default takes the old one's place (same metric): an atomic replace, refused
        (
            [{"table": "100", "dest": "default", "via": "10.77.0.1", "dev": "wg0-peer", "metric": 10}],
            "Nothing had been changed",
        ),
        # a new metric: the new route goes in first, refused
        (
            [
                {"table": "100", "dest": "default", "via": "10.77.0.1", "dev": "wg0-peer", "metric": 5},
                {"table": "100", "dest": "default", "type": "blackhole", "metric": 100, "family": "4"},
            ],
            "Nothing had been changed",
        ),
    ],
)
@pytest.mark.parametrize("state", ["replaced", "overridden"])
def test_a_refused_gateway_leaves_the_table_as_it_was(tunnel, module, routes, how, state):
    before = show(tunnel)
    assert before["100"][:2] == ["default dev wg0 scope link metric 10", "blackhole default metric 100"]
    args = {"netns": tunnel, "routes": routes, "state": state, "scope": {"tables": ["100"]}}
    failed = module("policy_rule", args, expect_fail=True)
    assert "the kernel refused" in failed["msg"] and "10.77.0.1" in failed["msg"]
    assert how in failed["msg"] and "the rules and routes are as they were" in failed["msg"]
    assert show(tunnel) == before


@pytest.mark.parametrize("python", PYTHONS, ids=PY_IDS)
def test_a_refused_gateway_after_deletions_is_undone(tunnel, module, python):
    """Two routes share the slot (default, metric 10): they go first, then the new one is refused."""
    subprocess.run(
        ["ip", "-n", tunnel, "route", "append", "blackhole", "default", "metric", "10", "table", "100"], check=True
    )
    before = show(tunnel)
    assert "blackhole default metric 10" in before["100"]
    args = {
        "netns": tunnel,
        "routes": [{"table": "100", "dest": "default", "via": "10.77.0.1", "dev": "wg0-peer", "metric": 10}],
        "state": "replaced",
    }
    failed = module("policy_rule", args, expect_fail=True, python=python)
    assert failed["commands_done"][:2] == [
        "del ip -4 route table 100 default dev wg0 metric 10",
        "del ip -4 route table 100 blackhole default metric 10",
    ] or sorted(failed["commands_done"]) == sorted(
        [
            "del ip -4 route table 100 default dev wg0 metric 10",
            "del ip -4 route table 100 blackhole default metric 10",
            "del ip -4 route table 100 blackhole default metric 100",
        ]
    )
    assert "the kernel refused add ip -4 route table 100 default via 10.77.0.1 dev wg0-peer metric 10" in failed["msg"]
    assert "What had been done was undone: the rules and routes are as they were" in failed["msg"]
    assert show(tunnel) == before


def test_merged_takes_out_what_it_added_when_a_later_route_is_refused(tunnel, module):
    before = show(tunnel) | {"200": table(tunnel, number="200") + table(tunnel, "-6", number="200")}
    args = {
        "netns": tunnel,
        "rules": [{"priority": 1100, "fwmark": "0x2", "table": "200"}],
        "routes": [
            {"table": "200", "dest": "default", "type": "blackhole", "metric": 100},
            {"table": "200", "dest": "default", "via": "10.77.0.1", "dev": "wg0-peer", "metric": 10},
        ],
    }
    failed = module("policy_rule", args, expect_fail=True)
    assert len(failed["commands_done"]) == 2  # both blackholes went in, then the gateway was refused
    assert "What had been done was undone: the rules and routes are as they were (2 steps)" in failed["msg"]
    assert show(tunnel) | {"200": table(tunnel, number="200") + table(tunnel, "-6", number="200")} == before


@pytest.mark.parametrize("python", PYTHONS, ids=PY_IDS)
def test_replaced_swaps_a_default_route_atomically(tunnel, python):
    result = run_four(
        "policy_rule",
        {
            "netns": tunnel,
            "routes": [{"table": "100", "dest": "default", "via": "10.99.0.2", "metric": 10, "family": "4"}],
            "state": "replaced",
        },
        python=python,
    )
    assert result["commands"][0] == "replace ip -4 route table 100 default via 10.99.0.2 metric 10"
    assert table(tunnel) == ["default via 10.99.0.2 dev wg0 metric 10"]


# 4. gathered in a fresh namespace (IPMR rules, families 128 and 129)


def test_gathered_without_scope_skips_the_multicast_families(netns, module):
    result = module("policy_rule", {"netns": netns, "state": "gathered"})
    found = {(r["family"], r["priority"]) for r in result["gathered"]["rules"]}
    assert found == {("4", 0), ("4", 32766), ("4", 32767), ("6", 0), ("6", 32766)}


# 5. rt_tables files with lines that are not ID NAME


def test_odd_rt_tables_lines_are_skipped_with_a_warning(wgns, module):
    path = "/etc/iproute2/rt_tables.d/splitroute-test-odd.conf"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"4243 srodd\nnot-a-number srbad\n\xff\xfe\n4244\n")
    try:
        args = {"netns": wgns, "rules": [{"priority": 1000, "fwmark": "0x1", "table": "srodd"}]}
        result = module("policy_rule", args)
        assert "lookup srodd" in " ".join(rules(wgns)) or "lookup 4243" in " ".join(rules(wgns))
        texts = [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]
        odd = [w for w in texts if path in w]
        assert [w.split(" is not")[0] for w in odd] == ["%s line %d" % (path, n) for n in (2, 3, 4)], odd
    finally:
        os.unlink(path)


# 6. idempotent: fwmark 0 and an IPv6 metric 0


def test_fwmark_zero_is_idempotent(wgns):
    run_four("policy_rule", {"netns": wgns, "rules": [{"priority": 1000, "fwmark": "0", "table": "100"}]})
    assert "1000:\tfrom all fwmark 0 lookup 100" in ip(wgns, "-4", "rule")


def test_ipv6_metric_zero_is_idempotent(wgns):
    route = {"table": "100", "dest": "default", "dev": "wg0", "metric": 0, "family": "6"}
    result = run_four("policy_rule", {"netns": wgns, "routes": [route]})
    assert result["commands"] == ["add ip -6 route table 100 default dev wg0 metric 1024"]


# 7. an empty netns is not "this namespace"


def test_empty_netns_is_refused(module):
    failed = module("policy_rule", {"netns": "", "state": "gathered"}, expect_fail=True)
    assert failed["msg"].startswith("netns '' is invalid")
    assert "gathered" not in failed


# 8. wrong types: the module's message with the path, one case per field and kind

ROUTE_OK = [{"table": "100", "dest": "default", "type": "blackhole", "metric": 100}] * 2
RULE_OK = [{"priority": 1000, "fwmark": "0x1", "table": "100"}]
WRONG_TYPES = [
    ({"routes": 5}, "routes: must be a list, not int"),
    ({"routes": "default"}, "routes: must be a list, not str"),
    ({"routes": {"table": "100"}}, "routes: must be a list, not dict"),
    ({"routes": [*ROUTE_OK, "default"]}, "routes[2]: must be a dict, not str"),
    ({"routes": [*ROUTE_OK, {"table": ["100"], "dest": "default"}]}, "routes[2].table: must be a string or a number"),
    ({"routes": [*ROUTE_OK, {"table": "100", "dest": ["default"]}]}, "routes[2].dest: must be a string, not list"),
    (
        {"routes": [*ROUTE_OK, {"table": "100", "dest": "default", "via": ["10.0.0.1"]}]},
        "routes[2].via: must be a string",
    ),
    ({"routes": [*ROUTE_OK, {"table": "100", "dest": "default", "via": {"a": 1}}]}, "routes[2].via: must be a string"),
    (
        {"routes": [*ROUTE_OK, {"table": "100", "dest": "default", "dev": {"wg0": 1}}]},
        "routes[2].dev: must be a string",
    ),
    (
        {"routes": [*ROUTE_OK, {"table": "100", "dest": "default", "dev": "wg0", "metric": [1]}]},
        "routes[2].metric: must be a number",
    ),
    (
        {"routes": [*ROUTE_OK, {"table": "100", "dest": "default", "type": ["blackhole"]}]},
        "routes[2].type: must be a string",
    ),
    (
        {"routes": [*ROUTE_OK, {"table": "100", "dest": "default", "family": {"4": 1}}]},
        "routes[2].family: must be a string",
    ),
    ({"routes": [*ROUTE_OK, {"table": "100", "dest": "default", "gw": "10.0.0.1"}]}, "routes[2]: unknown option gw"),
    ({"rules": 5}, "rules: must be a list, not int"),
    ({"rules": "priority=1 table=100"}, "rules: must be a list, not str"),
    ({"rules": [*RULE_OK, {"priority": [1], "table": "100"}]}, "rules[1].priority: must be a number"),
    ({"rules": [*RULE_OK, {"priority": True, "table": "100"}]}, "rules[1].priority: must be a number, not a boolean"),
    ({"rules": [*RULE_OK, {"priority": 1, "from": ["10.0.0.0/8"], "table": "100"}]}, "rules[1].from: must be a string"),
    ({"rules": [*RULE_OK, {"priority": 1, "to": {"a": 1}, "table": "100"}]}, "rules[1].to: must be a string"),
    ({"rules": [*RULE_OK, {"priority": 1, "fwmark": [1], "table": "100"}]}, "rules[1].fwmark: must be a number"),
    (
        {"rules": [*RULE_OK, {"priority": 1, "fwmark": 1, "fwmask": {}, "table": "100"}]},
        "rules[1].fwmask: must be a number",
    ),
    ({"rules": [*RULE_OK, {"priority": 1, "iif": ["lo"], "table": "100"}]}, "rules[1].iif: must be a string"),
    ({"rules": [*RULE_OK, {"priority": 1, "oif": 5, "table": "100"}]}, "rules[1].oif: must be a string, not int"),
    (
        {"rules": [*RULE_OK, {"priority": 1, "uidrange": {"start": 1}, "table": "100"}]},
        "rules[1].uidrange: must be a string or a number",
    ),
    (
        {"rules": [*RULE_OK, {"priority": 1, "ipproto": ["tcp"], "table": "100"}]},
        "rules[1].ipproto: must be a string or a number",
    ),
    (
        {"rules": [*RULE_OK, {"priority": 1, "ipproto": "tcp", "dport": [53], "table": "100"}]},
        "rules[1].dport: must be a string or a number",
    ),
    (
        {"rules": [*RULE_OK, {"priority": 1, "invert": [True], "table": "100"}]},
        "rules[1].invert: must be true or false",
    ),
    (
        {"rules": [*RULE_OK, {"priority": 1, "suppress_prefixlength": "x", "table": "main"}]},
        "rules[1].suppress_prefixlength: must be a number",
    ),
    ({"rules": [*RULE_OK, {"priority": 1, "action": {"lookup": 1}}]}, "rules[1].action: must be a string"),
    ({"rules": [*RULE_OK, {"priority": 1, "table": {"100": 1}}]}, "rules[1].table: must be a string or a number"),
    ({"scope": "tables=100", "state": "gathered"}, "scope: must be a dict, not str"),
    ({"scope": {"tables": 100}, "state": "gathered"}, "scope.tables: must be a list, not int"),
    ({"scope": {"tables": "100,200"}, "state": "gathered"}, "scope.tables: must be a list, not str"),
    ({"scope": {"tables": [{"100": 1}]}, "state": "gathered"}, "scope.tables[0]: must be a string or a number"),
    ({"scope": {"priorities": ["1000-1099"]}, "state": "gathered"}, "scope.priorities: must be a string or a number"),
    ({"table_names": ["wg0"]}, "table_names: must be a dict, not list"),
    ({"table_names": {"wg0": [100]}}, "table_names.wg0: must be a number"),
]


@pytest.mark.parametrize(("args", "message"), WRONG_TYPES, ids=[m.split(":")[0] for _args, m in WRONG_TYPES])
def test_wrong_types_name_the_option_and_path(wgns, module, args, message):
    before = show(wgns)
    failed = module("policy_rule", dict(args, netns=wgns), expect_fail=True)
    assert failed["msg"].startswith(message), failed["msg"]
    assert "Traceback" not in failed.get("module_stderr", "") and show(wgns) == before
