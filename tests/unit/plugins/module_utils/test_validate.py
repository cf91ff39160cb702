"""The collection's one address parser: no scope id, no newline, no str() of a list."""

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    check_priorities,
    check_tables,
    parse_address,
    parse_interface,
    parse_interface_address,
    parse_network,
    parse_next_hop,
    want_bool,
    want_dict,
    want_int,
    want_list,
    want_str,
)

INJECTIONS = [
    "fd00::2%x\nFZINJ=1",
    "fd00::2%lo",
    "fd00::2%x\nPreUp = touch /tmp/ran #",
    "fe80::1%eth0",
    "10.0.0.1\n",
    " 10.0.0.1",
    "10.0.0.1\x00",
]


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("parser", [parse_address, parse_network, parse_interface])
def test_scope_ids_and_control_characters_are_refused(parser, value):
    result = parser(value, what="dns")
    assert result[0] is None
    assert result[-1].startswith("dns ")


@pytest.mark.parametrize("value", [["10.0.0.1"], 167772161, None, True, {"a": 1}])
@pytest.mark.parametrize("parser", [parse_address, parse_network, parse_interface])
def test_a_value_that_is_not_a_string_is_refused_by_type(parser, value):
    result = parser(value, what="peer.address")
    assert result[0] is None
    assert "must be a string" in result[-1]


def test_scope_ids_on_address_objects_are_refused():
    _addr, error = parse_address(ipaddress.IPv6Address("fd00::1%x"))
    assert "scope id" in error


def test_good_values_parse():
    assert parse_address("fd00::2", 6)[0] == ipaddress.IPv6Address("fd00::2")
    assert parse_address("10.0.0.1", 6)[1] == "address '10.0.0.1' is not an IPv6 address"
    assert str(parse_network("10.0.0.0/24")[0]) == "10.0.0.0/24"
    assert "host bits" in parse_network("10.0.0.1/24")[1]
    assert str(parse_interface("fd00::2")[0]) == "fd00::2/128"
    assert "prefix length is required" in parse_interface_address("10.0.0.1")[1]
    assert str(parse_interface_address("10.0.0.1/24")[0]) == "10.0.0.1/24"


def test_a_next_hop_takes_an_interface_only_when_link_local():
    addr, ifname, error = parse_next_hop("fe80::1%wg0")
    assert (str(addr), ifname, error) == ("fe80::1", "wg0", None)
    assert parse_next_hop("10.0.0.1")[:2] == (ipaddress.IPv4Address("10.0.0.1"), None)
    assert "only a link-local" in parse_next_hop("fd00::1%wg0")[2]
    assert "interface" in parse_next_hop("fe80::1%x\nX")[2]
    assert "interface" in parse_next_hop("fe80::1%")[2]
    assert parse_next_hop("fe80::1%wg0", version=4)[2] == "via 'fe80::1' is not an IPv4 address"


def test_types():
    assert want_list("netflix", "domains.wg0")[1] == (
        "domains.wg0: must be a list, not str (write ['netflix'] for a list of one)"
    )
    assert want_list(None, "x") == ([], None)
    assert want_list(("a",), "x") == (["a"], None)
    assert want_str(["a"], "peers[1].name")[1] == "peers[1].name: must be a string, not list"
    assert want_str("", "x")[1] == "x: must not be empty"
    assert want_int("5302", "back_port", 1, 65535) == (5302, None)
    assert want_int("0x10", "fwmark") == (16, None)
    assert want_int(True, "x")[1] == "x: must be a number, not a boolean"
    assert want_int("5x", "x")[1] == "x: must be a number, not '5x'"
    assert want_int("9" * 5000, "x")[0] is None  # past Python's int() digit limit: refused, never a ValueError
    assert want_int(70000, "port", 1, 65535)[1] == "port: 70000 is outside 1-65535"
    assert want_bool("false", "x") == (False, None)
    assert want_bool("maybe", "x")[1] == "x: must be true or false, not 'maybe'"
    assert want_dict([], "x")[1] == "x: must be a dict, not list"


@pytest.mark.parametrize(("first", "count"), [(0, 1), (250, 5), (253, 1), (255, 3)])
def test_reserved_tables_are_refused(first, count):
    assert "kernel" in check_tables(first, count, "table_base") or "outside" in check_tables(first, count, "t")


@pytest.mark.parametrize(("first", "last"), [(0, 199), (32600, 32799), (32767, 32767)])
def test_reserved_priorities_are_refused(first, last):
    assert check_priorities(first, last, "priority_base")


def test_free_ranges_pass():
    assert check_tables(100, 10, "t") is None
    assert check_tables(256, 10, "t") is None
    assert check_priorities(1000, 1099, "p") is None


def test_tagged_types_are_named_by_their_builtin_type():
    class _AnsibleTaggedInt(int):
        pass

    assert want_str(_AnsibleTaggedInt(3), "x")[1] == "x: must be a string, not int"
    assert want_bool(1, "x") == (True, None)
    assert want_bool(2, "x")[1] == "x: must be true or false, not 2"
