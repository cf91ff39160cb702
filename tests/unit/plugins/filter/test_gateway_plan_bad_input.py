"""splitroute.vpn.gateway_plan against hostile and careless input (issue 11).

- every address the plan reads goes through the collection's one parser: a scope id
  (``fd10:4::1%x\\nFZINJ=1``), a control character or a non-string is refused, naming the field;
- the tables and rule priorities the role owns hold none of the kernel's;
- the veth networks are sized by arithmetic, never listed;
- a wrong type is the role's message with the variable and path, never a TypeError, and a
  string where a list is expected is refused, never split into characters;
- numbers given as digit strings (``-e splitroute_gateway_port=51820``) are numbers.
"""

from __future__ import annotations

import copy
import ipaddress
import time

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import gateway_plan

KEY1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
KEY2 = "HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo="
PSK = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="

# Every field of the plan's input is given, and every list has an entry [1] where it matters,
# so that each field has one place to be wrong.
SETTINGS = {
    "address": "10.4.0.1/24",
    "address6": "fd10:4::1/64",
    "veth_network": "10.255.255.0/24",
    "veth_network6": "fd00:255:255::/64",
    "table_base": 200,
    "priority_base": 2000,
    "local_networks": ["172.31.0.0/16"],
    "state": "present",
    "wireguard_userspace": "",
    "interface": "wg0",
    "uplink": "eth0",
    "port": 51820,
    "mtu": 1420,
    "dns_upstreams": ["9.9.9.9", "2001:db8::53"],
    "dns_records": [{"name": "vault.lan", "address": "10.4.0.7"}, {"name": "nas.lan", "address": "fd10:4::7"}],
    "dns_port_base": 5300,
    "endpoint": "198.51.100.40",
    "endpoint_port": 0,
    "keepalive": 25,
}
CLASSES = [
    {"range": "10.4.0.0/25", "range6": "fd10:4::/116", "exit": "direct"},
    {"range": "10.4.0.128/25", "range6": "fd10:4::1000/116", "exit": "provider"},
]
PROVIDERS = [
    {"name": "first", "server": "198.51.100.30", "config": "client\n"},
    {
        "name": "provider",
        "server": "198.51.100.50",
        "port": 1194,
        "proto": "udp",
        "config": "client\n",
        "username": "user",
        "password": "secret",
        "dns_upstreams": ["10.8.0.1"],
    },
]
PEERS = [
    # [0] unmanaged (allowed_ips), [1] managed with every field
    {"name": "phone", "address": "10.4.0.140", "address6": "fd10:4::1140", "allowed_ips": ["0.0.0.0/0", "::/0"]},
    {"name": "laptop", "address": "10.4.0.10", "address6": "fd10:4::10", "public_key": KEY1, "preshared_key": PSK},
]
INPUT = {"peers": PEERS, "classes": CLASSES, "providers": PROVIDERS, "settings": SETTINGS}
VARIABLE = {"peers": "splitroute_gateway_peers", "classes": "splitroute_gateway_classes"}
VARIABLE.update(providers="splitroute_gateway_providers", dns_records="splitroute_gateway_dns_records")


def plan(data):
    return gateway_plan(data["peers"], data["classes"], data["providers"], data["settings"])


def changed(where, value):
    """INPUT with one value replaced; WHERE is a path of keys and indexes, e.g. ("peers", 1, "name")."""
    data = copy.deepcopy(INPUT)
    node = data
    for step in where[:-1]:
        node = node[step]
    node[where[-1]] = value
    return data


def refused(data):
    with pytest.raises(AnsibleFilterError) as err:
        plan(data)
    return str(err.value)


def test_the_full_input_is_valid():
    result = plan(INPUT)
    assert [p["name"] for p in result["unmanaged"]] == ["phone"]
    assert [p["table"] for p in result["providers"]] == [200, 201]


# ---------------------------------------------------------------- 1. one address parser

INJECT = "%x\nFZINJ=1"
HOSTILE = [
    # (where, value, the field the message names)
    (("settings", "address6"), "fd10:4::1" + INJECT + "/64", "splitroute_gateway_address6"),
    (("peers", 1, "address6"), "fd10:4::10" + INJECT, "splitroute_gateway_peers[1].address6"),
    (("peers", 0, "allowed_ips"), ["fd10:4::10" + INJECT], "splitroute_gateway_peers[0].allowed_ips[0]"),
    (("settings", "dns_upstreams"), ["fd00::53" + INJECT], "splitroute_gateway_dns_upstreams[0]"),
    (("settings", "dns_records", 0, "address"), "fd10:4::7" + INJECT, "splitroute_gateway_dns_records[0].address"),
    (("settings", "endpoint"), "[fd10::1" + INJECT + "]:51820", "splitroute_gateway_endpoint"),
    (("settings", "endpoint"), "fd10::1" + INJECT, "splitroute_gateway_endpoint"),
    # every other address the plan reads
    (("settings", "address"), "10.4.0.1/24\nFZINJ=1", "splitroute_gateway_address"),
    (("settings", "veth_network"), "10.255.255.0/24\nFZINJ=1", "splitroute_gateway_veth_network"),
    (("settings", "veth_network6"), "fd00:255:255::" + INJECT + "/64", "splitroute_gateway_veth_network6"),
    (("settings", "local_networks"), ["172.31.0.0/16\nFZINJ=1"], "splitroute_gateway_local_networks[0]"),
    (("classes", 1, "range"), "10.4.0.128/25\nFZINJ=1", "splitroute_gateway_classes[1].range"),
    (("classes", 1, "range6"), "fd10:4::1000" + INJECT + "/116", "splitroute_gateway_classes[1].range6"),
    (("peers", 1, "address"), "10.4.0.10\nFZINJ=1", "splitroute_gateway_peers[1].address"),
    (("providers", 1, "server"), "198.51.100.50\nFZINJ=1", "splitroute_gateway_providers[1].server"),
    (("providers", 1, "dns_upstreams"), ["10.8.0.1\nFZINJ=1"], "splitroute_gateway_providers[1].dns_upstreams[0]"),
]


@pytest.mark.parametrize(("where", "value", "field"), HOSTILE, ids=["-".join(map(str, h[0])) for h in HOSTILE])
def test_a_scope_id_or_a_new_line_in_an_address_is_refused(where, value, field):
    message = refused(changed(where, value))
    assert field in message
    assert "FZINJ=1\n" not in message  # the value is quoted (repr), never a line of its own


def test_two_peers_whose_address6_differ_only_by_scope_id_are_refused():
    data = changed(("peers", 0, "address6"), "fd10:4::10%a")
    data["peers"][0]["address"] = "10.4.0.11"
    message = refused(data)
    assert "splitroute_gateway_peers[0].address6 'fd10:4::10%a' is invalid: a scope id" in message


def test_the_duplicate_check_compares_the_parsed_addresses():
    data = changed(("peers", 0, "address6"), "fd10:4:0:0::0010")
    data["peers"][0]["address"] = "10.4.0.10/32"
    message = refused(data)
    assert "peer laptop: address 10.4.0.10 is peer phone's too" in message
    assert "peer laptop: address6 fd10:4::10 is peer phone's too" in message


# ---------------------------------------------------------------- 2. the kernel's tables and rules


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("priority_base", 0, "splitroute_gateway_priority_base: priorities 0-199 are outside"),
        ("priority_base", 32600, "priorities 32600-32799 include the kernel's rule 32766 (from all lookup main)"),
        ("priority_base", 32567, "include the kernel's rule 32766"),
        ("priority_base", 4294967200, "are outside 1-4294967295"),
        ("table_base", 0, "splitroute_gateway_table_base: tables 0-1 are outside"),
        ("table_base", 252, "tables 252-253 include the kernel's table 253 (default)"),
        ("table_base", 253, "include the kernel's table 253"),
        ("table_base", 254, "tables 254-255 include the kernel's table 254 (main)"),
        ("table_base", 255, "include the kernel's table 255 (local)"),
    ],
)
def test_the_kernels_tables_and_priorities_are_refused(field, value, message):
    assert message in refused(changed(("settings", field), value))


def test_the_ranges_next_to_the_kernels_are_accepted():
    result = plan(changed(("settings", "priority_base"), 32566))
    assert result["priorities"] == "32566-32765"
    assert [p["table"] for p in plan(changed(("settings", "table_base"), 251))["providers"]] == [251, 252]
    data = changed(("settings", "table_base"), 253)
    data["providers"] = []
    data["classes"] = [dict(CLASSES[0], range="10.4.0.0/24", range6="fd10:4::/64")]
    assert "include the kernel's table 253" in refused(data)  # the base itself, even with no provider


# ---------------------------------------------------------------- 4. networks are sized, not listed


@pytest.fixture
def never_listed(monkeypatch):
    """Listing a network's subnets or addresses fails the test."""

    def listed(*_args, **_kwargs):
        raise AssertionError("a network was listed address by address")

    for name in ("subnets", "hosts", "__iter__"):
        monkeypatch.setattr(ipaddress._BaseNetwork, name, listed)


@pytest.mark.parametrize(("veth", "veth6"), [("10.255.0.0/16", "fd00:255::/48"), ("10.255.255.0/29", "fd00::/125")])
def test_the_veth_networks_are_sized_not_listed(never_listed, veth, veth6):
    data = changed(("settings", "veth_network"), veth)
    data["settings"]["veth_network6"] = veth6
    started = time.monotonic()
    second = plan(data)["providers"][1]
    assert time.monotonic() - started < 1
    net, net6 = ipaddress.ip_network(veth), ipaddress.ip_network(veth6)
    assert second["veth_network"] == str(ipaddress.ip_network((int(net.network_address) + 4, 30)))
    assert (second["host_address"], second["ns_address"]) == (
        str(net.network_address + 5),
        str(net.network_address + 6),
    )
    assert (second["host_address6"], second["ns_address6"]) == (
        str(net6.network_address + 5),
        str(net6.network_address + 6),
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("veth_network", "10.0.0.0/8", "splitroute_gateway_veth_network 10.0.0.0/8 must be a /16 to /30"),
        ("veth_network", "16.0.0.0/4", "splitroute_gateway_veth_network 16.0.0.0/4 must be a /16 to /30"),
        ("veth_network", "10.255.255.0/31", "must be a /16 to /30"),
        ("veth_network", "10.255.255.0/30", "splitroute_gateway_veth_network 10.255.255.0/30 is too small for 2"),
        ("veth_network6", "fd00::/8", "splitroute_gateway_veth_network6 fd00::/8 must be a /48 to /126"),
        ("veth_network6", "fd00::/126", "splitroute_gateway_veth_network6 fd00::/126 is too small for 2 providers"),
    ],
)
def test_a_veth_network_too_large_or_too_small_is_refused(never_listed, field, value, message):
    started = time.monotonic()
    assert message in refused(changed(("settings", field), value))
    assert time.monotonic() - started < 1


# ---------------------------------------------------------------- 5. and 6. types

# Each field of the plan's input and its kind; "required" fields are also tried with None.
FIELDS = [
    # (where, kind, required)
    (("settings", "address"), "str", True),
    (("settings", "address6"), "str", False),
    (("settings", "veth_network"), "str", False),
    (("settings", "veth_network6"), "str", False),
    (("settings", "table_base"), "int", False),
    (("settings", "priority_base"), "int", False),
    (("settings", "local_networks"), "list", False),
    (("settings", "local_networks", 0), "str", True),
    (("settings", "state"), "str", False),
    (("settings", "wireguard_userspace"), "str", False),
    (("settings", "interface"), "str", True),
    (("settings", "uplink"), "str", True),
    (("settings", "port"), "int", False),
    (("settings", "mtu"), "int", False),
    (("settings", "dns_upstreams"), "list", False),
    (("settings", "dns_upstreams", 1), "str", True),
    (("settings", "dns_records"), "list", False),
    (("settings", "dns_records", 1), "dict", True),
    (("settings", "dns_records", 1, "name"), "str", True),
    (("settings", "dns_records", 1, "address"), "str", True),
    (("settings", "dns_port_base"), "int", False),
    (("settings", "endpoint"), "str", False),
    (("settings", "endpoint_port"), "int", False),
    (("settings", "keepalive"), "int", False),
    (("peers",), "list", False),
    (("peers", 1), "dict", True),
    (("peers", 1, "name"), "str", True),
    (("peers", 1, "public_key"), "str", False),
    (("peers", 1, "address"), "str", True),
    (("peers", 1, "address6"), "str", False),
    (("peers", 1, "preshared_key"), "str", False),
    (("peers", 0, "allowed_ips"), "list", False),
    (("peers", 0, "allowed_ips", 1), "str", True),
    (("classes",), "list", False),
    (("classes", 1), "dict", True),
    (("classes", 1, "range"), "str", True),
    (("classes", 1, "range6"), "str", False),
    (("classes", 1, "exit"), "str", True),
    (("providers",), "list", False),
    (("providers", 1), "dict", True),
    (("providers", 1, "name"), "str", True),
    (("providers", 1, "config"), "str", True),
    (("providers", 1, "server"), "str", True),
    (("providers", 1, "port"), "int", False),
    (("providers", 1, "proto"), "str", False),
    (("providers", 1, "username"), "str", False),
    (("providers", 1, "password"), "str", False),
    (("providers", 1, "dns_upstreams"), "list", False),
    (("providers", 1, "dns_upstreams", 0), "str", True),
]
WRONG = {
    "str": [5, ["10.4.0.10"], {"a": 1}],
    "int": [["1"], {"a": 1}, "many", True],
    "list": ["10.4.0.0/24", 5, {"a": 1}],
    "dict": [5, "name", ["name"]],
}


def path_of(where):
    """The variable and path the message must name: splitroute_gateway_peers[1].name."""
    head, rest = where[0], list(where[1:])
    if head == "settings":
        field = rest.pop(0)
        head = {"keepalive": "splitroute_gateway_peer_keepalive"}.get(field, "splitroute_gateway_" + field)
    else:
        head = VARIABLE[head]
    return head + "".join("[%d]" % step if isinstance(step, int) else "." + step for step in rest)


CASES = [
    pytest.param(where, value, id="%s=%s" % (path_of(where), type(value).__name__ if value is not None else "None"))
    for where, kind, required in FIELDS
    for value in WRONG[kind] + ([None] if required else [])
]


@pytest.mark.parametrize(("where", "value"), CASES)
def test_a_wrong_type_is_the_roles_message_with_the_path(where, value):
    with pytest.raises(AnsibleFilterError) as err:
        plan(changed(where, value))
    message = str(err.value)
    assert path_of(where) in message
    for secret in (PSK, "secret"):
        assert secret not in message


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("settings", "dns_upstreams"), "9.9.9.9"),
        (("settings", "local_networks"), "172.31.0.0/16"),
        (("settings", "dns_records"), "vault.lan"),
        (("peers", 0, "allowed_ips"), "0.0.0.0/0"),
        (("providers", 1, "dns_upstreams"), "10.8.0.1"),
        (("peers",), "laptop"),
        (("classes",), "10.4.0.0/24"),
        (("providers",), "provider"),
    ],
)
def test_a_string_where_a_list_is_expected_is_refused_not_split(where, value):
    message = refused(changed(where, value))
    assert "%s: must be a list, not str (write [%r] for a list of one)" % (path_of(where), value) in message


def test_numbers_from_extra_vars_are_numbers():
    """`-e splitroute_gateway_port=51820` gives a string: it passes the argument spec, and the plan reads it."""
    data = copy.deepcopy(INPUT)
    numbers = {"table_base": "200", "priority_base": "2000", "port": "51820", "mtu": "1420", "dns_port_base": "5300"}
    data["settings"].update(numbers, endpoint_port="0", keepalive="25")
    data["providers"][1]["port"] = "1194"
    assert plan(data) == plan(INPUT)
    result = plan(data)
    assert (result["port"], result["mtu"], result["priority_base"], result["priorities"]) == (
        51820,
        1420,
        2000,
        "2000-2199",
    )
    assert result["providers"][1]["port"] == 1194
