"""The collection's one address parser: no scope id, no newline, no str() of a list."""

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    parse_address,
    parse_interface,
    parse_interface_address,
    parse_network,
    parse_next_hop,
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
    _, error = parse_address(ipaddress.IPv6Address("fd00::1%x"))
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
