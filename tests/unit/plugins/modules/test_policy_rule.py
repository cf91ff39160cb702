"""splitroute.vpn.policy_rule against the real kernel, inside throwaway network namespaces.

Every stateful case runs under the venv's pyroute2 (0.9) and under Debian's
/usr/bin/python3 with python3-pyroute2 (0.7), the one managed Debian 12 hosts have.
"""

from __future__ import annotations

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
        ({"rules": [{"priority": 1, "from": "10.0.0.1/24", "table": "100"}]}, "rules[1].from '10.0.0.1/24' is invalid: 10.0.0.1/24 has host bits set"),
        (
            {"rules": [{"priority": 1, "from": "10.0.0.0/24", "to": "2001:db8::/32", "table": "100"}]},
            "rules[1]: addresses of both IPv4 and IPv6",
        ),
        ({"rules": [{"priority": 1, "from": "10.0.0.0/24", "family": "6", "table": "100"}]}, "rules[1].family: 6 does not match"),
        ({"rules": [{"priority": 1, "dport": "53", "table": "100"}]}, "rules[1].dport: needs ipproto"),
        ({"rules": [{"priority": 1, "iif": "a-very-long-interface-name", "table": "100"}]}, "rules[1].iif 'a-very"),
        ({"rules": [{"priority": 1, "table": "nosuchtable"}]}, "rules[1].table: 'nosuchtable' is neither"),
        ({"rules": [{"priority": 1, "action": "blackhole", "table": "100"}]}, "rules[1]: table only goes with action lookup"),
        ({"rules": [{"priority": 1, "fwmark": "0x1\nflush", "table": "100"}]}, "rules[1].fwmark: must be a number"),
        ({"routes": [{"table": "100", "dest": "default"}]}, "routes[0]: a unicast route needs dev or via"),
        ({"routes": [{"table": "100", "dest": "default", "dev": "nosuch0"}]}, "does not exist"),
        ({"routes": [{"table": "100", "dest": "default", "type": "blackhole", "dev": "wg0"}]}, "routes[0]: a blackhole route takes no dev"),
        ({"routes": [{"table": "100", "dest": "10.0.0.0/33", "dev": "wg0"}]}, "routes[0].dest '10.0.0.0/33' is invalid"),
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
