"""Every wrong type in the client role's input gets the role's message with the variable and its path.

One case per field and kind of mistake: None where a value is required, a number, a list, a dict, a string
where a list is expected, a boolean where a number is. Each must raise AnsibleFilterError naming the path -
never a TypeError, AttributeError or KeyError (those escape pytest.raises(AnsibleFilterError) and fail).
"""

from __future__ import annotations

import copy

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.filter.client_plan import (
    client_domain_files,
    client_plan,
    client_secrets,
    client_settings,
)

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
T = "splitroute_client_tunnels[0]"
VALID = {
    "name": "wg0",
    "address": ["10.99.0.10/32"],
    "private_key": KEY,
    "peer": {
        "public_key": KEY,
        "endpoint": "198.51.100.20:51820",
        "preshared_key": KEY,
        "allowed_ips": ["0.0.0.0/0"],
        "persistent_keepalive": 25,
    },
    "mtu": 1420,
    "dns": ["10.99.0.1"],
    "domains": ["example.com"],
    "domain_files": ["f.txt"],
    "networks": ["203.0.113.0/24"],
    "users": ["nobody"],
    "ports": [{"proto": "tcp", "port": "443"}],
    "fwmark": 1,
    "table": 100,
    "priority": 1000,
    "back_port": 5301,
}
FILES = {"f.txt": "f.example\n"}
SETTINGS = {
    "state": "present",
    "set_timeout": 3600,
    "max_cache_ttl": 300,
    "max_ttl": 300,
    "cache_size": 10000,
    "table_base": 100,
    "priority_base": 1000,
    "back_port": 5301,
    "upstream_dns": ["192.0.2.53"],
    "wireguard_userspace": "",
    "dns_redirect": True,
    "tailscale": False,
}
LISTS = {"splitroute_client_domains__x": {"wg0": ["x.example"]}}

# kinds of mistakes, by the kind of value a field wants
REQUIRED = [None]
NOT_STR = [1, True, ["x"], {"x": 1}]
NOT_INT = ["x", True, 1.5, [1], {"x": 1}]
NOT_BOOL = ["maybe", 2, [True], {"x": 1}]
NOT_LIST = [1, "x", {"x": 1}]
BAD_ITEMS = [None, 1, ["x"], {"x": 1}]  # each as the list's only item
NOT_DICT = [1, "x", ["x"]]


def cases():
    """(id, where to put the value, the value, the path the message must name)."""
    out = []

    def field(path, kinds, items=None):
        dotted = T + "".join("[%d]" % p if isinstance(p, int) else "." + p for p in path)
        for value in kinds:
            out.append(("tunnel." + ".".join(map(str, path)), ("tunnel", path), value, dotted))
        for value in items or []:
            out.append(("tunnel." + ".".join(map(str, path)) + "[0]", ("tunnel", path), [value], dotted + "[0]"))

    field(("name",), REQUIRED + NOT_STR)
    field(("address",), REQUIRED + NOT_LIST, BAD_ITEMS)
    field(("private_key",), NOT_STR)
    field(("peer",), REQUIRED + NOT_DICT)
    field(("peer", "public_key"), REQUIRED + NOT_STR)
    field(("peer", "endpoint"), REQUIRED + NOT_STR)
    field(("peer", "preshared_key"), NOT_STR)
    field(("peer", "allowed_ips"), NOT_LIST, BAD_ITEMS)
    field(("peer", "persistent_keepalive"), NOT_INT)
    for key in ("dns", "domains", "domain_files", "networks"):
        field((key,), NOT_LIST, BAD_ITEMS)
    field(("users",), NOT_LIST, [None, True, 1.5, ["x"], {"x": 1}])
    field(("ports",), NOT_LIST, BAD_ITEMS)
    field(("ports", 0, "proto"), REQUIRED + NOT_STR)
    field(("ports", 0, "port"), REQUIRED + [True, 1.5, [1], {"x": 1}])
    for key in ("mtu", "fwmark", "table", "priority", "back_port"):
        field((key,), NOT_INT)

    for key, kinds, items in (
        ("state", REQUIRED + NOT_STR, None),
        ("set_timeout", REQUIRED + NOT_INT, None),
        ("max_cache_ttl", REQUIRED + NOT_INT, None),
        ("max_ttl", REQUIRED + NOT_INT, None),
        ("cache_size", REQUIRED + NOT_INT, None),
        ("table_base", REQUIRED + NOT_INT, None),
        ("priority_base", REQUIRED + NOT_INT, None),
        ("back_port", REQUIRED + NOT_INT, None),
        ("upstream_dns", NOT_LIST, BAD_ITEMS),
        ("wireguard_userspace", NOT_STR, None),
        ("dns_redirect", REQUIRED + NOT_BOOL, None),
        ("tailscale", REQUIRED + NOT_BOOL, None),
    ):
        name = "splitroute_client_" + key
        out += [(name, ("settings", key), value, name) for value in kinds]
        out += [(name + "[0]", ("settings", key), [value], name + "[0]") for value in items or []]

    var = "splitroute_client_domains__x"
    out += [(var, ("lists", None), value, var) for value in NOT_DICT]
    out += [(var + "[wg0]", ("lists", "wg0"), value, var + "['wg0']") for value in NOT_LIST]
    out += [(var + "[wg0][0]", ("lists", "wg0"), [value], var + "['wg0'][0]") for value in BAD_ITEMS]
    out.append((var + "[1]", ("lists", 1), [], var + "[1]"))

    out += [("tunnels", ("tunnels", None), value, "splitroute_client_tunnels") for value in NOT_LIST]
    out += [("tunnels[0]", ("tunnels", 0), value, T) for value in [None, 1, "x", ["x"]]]
    return out


CASES = cases()


def build(where, value):
    tunnel, settings, lists = copy.deepcopy(VALID), dict(SETTINGS), copy.deepcopy(LISTS)
    tunnels = [tunnel]
    kind, path = where
    if kind == "tunnel":
        target = tunnel
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    elif kind == "settings":
        settings[path] = value
    elif kind == "lists":
        if path is None:
            lists["splitroute_client_domains__x"] = value
        else:
            lists["splitroute_client_domains__x"] = {path: value}
    elif path is None:
        tunnels = value
    else:
        tunnels = [value]
    return tunnels, settings, lists


def test_the_valid_input_passes():
    (plan,) = client_plan([VALID], SETTINGS, LISTS, FILES)
    assert plan["domains"] == ["example.com", "f.example", "x.example"]
    assert len(CASES) < 300


@pytest.mark.parametrize(("where", "value", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_wrong_type_gets_a_message_with_its_path(where, value, path):
    tunnels, settings, lists = build(where, value)
    with pytest.raises(AnsibleFilterError) as err:
        client_plan(tunnels, settings, lists, FILES)
    assert path in str(err.value), str(err.value)
    # the helpers that run before the plan (keys.yml) or beside it never raise anything else either
    for helper, args in ((client_secrets, (tunnels,)), (client_settings, (settings,))):
        try:
            helper(*args)
        except AnsibleFilterError:
            pass
    client_domain_files(tunnels)
