"""The pure parts of _policy_rule: rt_tables lines, field types, and the order of operations."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils import _policy_rule as pr


def test_rt_tables_lines_are_read_as_iproute2_reads_them():
    warnings = []
    text = "# comment\n255\tlocal\n0x10 hex\n0100 leading_zero\n100 wg0 # tunnel\n\n"
    assert pr.parse_rt_tables(text, "rt_tables", warnings) == {"local": 255, "hex": 16, "leading_zero": 100, "wg0": 100}
    assert warnings == []


@pytest.mark.parametrize(
    "line",
    ["wg0 100", "100", "100 wg0 extra", "-1 neg", "4294967296 big", "0x1g bad", "100 9name", "100 a\x00b", "\ufffd"],
)
def test_an_odd_rt_tables_line_is_skipped_with_a_warning(line):
    warnings = []
    assert pr.parse_rt_tables("7 good\n%s\n" % line, "/usr/share/iproute2/rt_tables", warnings) == {"good": 7}
    assert len(warnings) == 1 and warnings[0].startswith("/usr/share/iproute2/rt_tables line 2 is not 'ID NAME'")


def test_read_table_names_survives_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "odd.conf"
    path.write_bytes(b"\xff\xfe\n300 ok\n")
    warnings = []
    names = pr.read_table_names([str(path)], warnings)
    assert names["ok"] == 300 and names["main"] == 254
    assert len(warnings) == 1 and "line 1" in warnings[0]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"priority": "x"}, "rules[3].priority: must be a number, not 'x'"),
        ({"family": 4}, None),
        ({"family": 5}, "rules[3].family: must be one of 4, 6, both, not '5'"),
        ({"table": None, "prio": 1}, "rules[3]: unknown option prio"),
        ({"invert": "yes"}, None),
    ],
)
def test_typed(item, message):
    if message is None:
        assert pr.typed(item, pr.RULE_OPTIONS, "rules[3]")
    else:
        with pytest.raises(pr.PolicyError) as exc:
            pr.typed(item, pr.RULE_OPTIONS, "rules[3]")
        assert str(exc.value).startswith(message)


def _route(dest="0.0.0.0/0", metric=10, **kw):
    return dict({"family": socket.AF_INET, "table": 100, "dest": dest, "type": "unicast", "dev": "wg0", "via": None,
                 "metric": metric}, **kw)  # fmt: skip


def test_a_route_taking_the_only_place_of_another_replaces_it():
    old, new = _route(), _route(via="10.0.0.1")
    ops = pr.order_ops([], [], [old], [new], [old])
    assert [(o[0], o[2], o[3]) for o in ops] == [("replace", new, old)]


def test_new_routes_and_rules_go_in_before_old_ones_go():
    old, new = _route(metric=10), _route(metric=5)
    hole = _route(metric=100, type="blackhole", dev=None)
    old_rule, new_rule = {"priority": 1000}, {"priority": 1001}
    ops = pr.order_ops([old_rule], [new_rule], [old, hole], [new], [old, hole])
    assert [o[:2] for o in ops] == [
        ("add", "route"),
        ("del", "route"),
        ("del", "route"),
        ("add", "rule"),
        ("del", "rule"),
    ]
    assert ops[0][2] is new and ops[3][2] is new_rule


def test_a_slot_holding_two_routes_is_emptied_before_the_new_one_goes_in():
    a, b, new = _route(), _route(type="blackhole", dev=None), _route(via="10.0.0.1")
    ops = pr.order_ops([], [], [a, b], [new], [a, b])
    assert [(o[0], o[2]) for o in ops] == [("del", a), ("del", b), ("add", new)]
