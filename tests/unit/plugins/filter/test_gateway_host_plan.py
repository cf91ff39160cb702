"""The gateway's plan file (gateway_plan_file): the rule, route, scope, namespace and unit lists the
role's tasks, its templates and `splitroute --role gateway boot` read, computed once in Python
(_host_gateway.host_lists) instead of Jinja programs in the role's vars.

The expected lists below are what roles/gateway/vars/main.yml's Jinja (__splitroute_gateway_rules,
__splitroute_gateway_routes, __splitroute_gateway_provider_units, __splitroute_gateway_scope)
produced for the same plan, rendered once by ansible-playbook -c local before they were removed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import gateway_plan, gateway_plan_file
from ansible_collections.splitroute.vpn.plugins.module_utils import _host, _names

KEY1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
KEY2 = "HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo="
PEERS = [
    {"name": "laptop", "address": "10.4.0.10", "address6": "fd10:4::10", "public_key": KEY1},
    {"name": "srv", "address": "10.4.0.130", "public_key": KEY2},
]
CLASSES = [
    {"range": "10.4.0.0/25", "range6": "fd10:4::/116", "exit": "direct"},
    {"range": "10.4.0.128/26", "range6": "fd10:4::1000/116", "exit": "provider"},
    {"range": "10.4.0.192/26", "range6": "fd10:4::2000/116", "exit": "other"},
]
PROVIDERS = [
    {"name": "provider", "server": "198.51.100.30", "config": "client\n"},
    {"name": "other", "server": "198.51.100.50", "config": "client\n", "dns_upstreams": ["10.8.0.1"]},
]
SETTINGS = {
    "address": "10.4.0.1/24",
    "address6": "fd10:4::1/64",
    "table_base": 200,
    "priority_base": 2000,
    "local_networks": ["172.31.0.0/16", "192.168.7.0/24"],
}

# what the role's Jinja produced (ansible-playbook -c local, vars/main.yml before this change)
OLD_RULES = [
    {"from": "10.4.0.0/24", "priority": 2000, "table": "main", "to": "10.4.0.0/24"},
    {"from": "fd10:4::/64", "priority": 2000, "table": "main", "to": "fd10:4::/64"},
    {"from": "10.4.0.0/24", "priority": 2001, "table": "main", "to": "172.31.0.0/16"},
    {"from": "10.4.0.0/24", "priority": 2002, "table": "main", "to": "192.168.7.0/24"},
    {"from": "10.4.0.128/26", "priority": 2100, "table": "200"},
    {"from": "fd10:4::1000/116", "priority": 2100, "table": "200"},
    {"from": "10.255.255.1", "priority": 2100, "table": "200"},
    {"from": "10.4.0.192/26", "priority": 2101, "table": "201"},
    {"from": "fd10:4::2000/116", "priority": 2101, "table": "201"},
    {"from": "10.255.255.5", "priority": 2101, "table": "201"},
]
OLD_ROUTES = [
    {"dest": "default", "dev": "srgw-provider", "metric": 10, "table": "200", "via": "10.255.255.2"},
    {"dest": "default", "family": "4", "metric": 100, "table": "200", "type": "blackhole"},
    {"dest": "default", "dev": "srgw-provider", "metric": 10, "table": "200", "via": "fd00:255:255::2"},
    {"dest": "default", "family": "6", "metric": 100, "table": "200", "type": "blackhole"},
    {"dest": "default", "dev": "srgw-other", "metric": 10, "table": "201", "via": "10.255.255.6"},
    {"dest": "default", "family": "4", "metric": 100, "table": "201", "type": "blackhole"},
    {"dest": "default", "dev": "srgw-other", "metric": 10, "table": "201", "via": "fd00:255:255::6"},
    {"dest": "default", "family": "6", "metric": 100, "table": "201", "type": "blackhole"},
]
OLD_PROVIDER_UNITS = [
    "splitroute-gateway-openvpn@provider.service",
    "splitroute-gateway-openvpn@other.service",
    "splitroute-gateway-dns@provider.service",
    "splitroute-gateway-dns@other.service",
]
OLD_SCOPE = {"priorities": "2000-2199", "tables": ["200", "201"], "all_tables": ["200", "201"]}


@pytest.fixture
def plan():
    return gateway_plan_file(gateway_plan(PEERS, CLASSES, PROVIDERS, SETTINGS))


def test_the_lists_are_what_the_role_s_jinja_made(plan):
    assert plan["rules"] == OLD_RULES
    assert plan["routes"] == OLD_ROUTES
    assert plan["units"]["providers"] == OLD_PROVIDER_UNITS
    assert plan["scope"] == OLD_SCOPE


def test_units_start_in_boot_order_and_stop_in_reverse(plan):
    start = ["splitroute-gateway.service", *OLD_PROVIDER_UNITS, "splitroute-gateway-dns.service"]
    start += ["wg-quick@wg0.service", "splitroute-gateway-health.service"]
    assert plan["units"]["start"] == start
    assert plan["units"]["stop"] == start[::-1]
    assert plan["units"]["files"] == list(_names.GATEWAY_UNIT_FILES)


def test_each_namespace_is_what_the_boot_script_made(plan):
    """The netns_veth arguments the role's task and the boot take (the old script: addr replace /30
    and /126 nodad, routes to the server and the peer subnets via the host end, forwarding)."""
    other = plan["namespaces"][1]
    assert other == {
        "provider": "other",
        "name": "srgw-other",
        "veth": {
            "host_name": "srgw-other",
            "ns_name": "srgw0",
            "host_addresses": ["10.255.255.5/30", "fd00:255:255::5/126"],
            "ns_addresses": ["10.255.255.6/30", "fd00:255:255::6/126"],
        },
        "routes": [
            {"dest": "198.51.100.50/32", "via": "10.255.255.5"},
            {"dest": "10.4.0.0/24", "via": "10.255.255.5"},
            {"dest": "fd10:4::/64", "via": "fd00:255:255::5"},
        ],
        "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1},
        "nft_file": "/etc/splitroute-gateway/netns-other.nft",
    }
    assert plan["sysctls"] == {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1}


def test_an_ipv4_only_plan_has_no_ipv6_rule_route_or_sysctl():
    classes = [{k: v for k, v in c.items() if k != "range6"} for c in CLASSES]
    peers = [{k: v for k, v in p.items() if k != "address6"} for p in PEERS]
    settings = {k: v for k, v in SETTINGS.items() if k != "address6"}
    plan = gateway_plan_file(gateway_plan(peers, classes, PROVIDERS, dict(settings, address6="")))
    assert plan["rules"] == [r for r in OLD_RULES if ":" not in r["from"]]
    assert plan["routes"] == [r for r in OLD_ROUTES if ":" not in r.get("via", "") and r.get("family") != "6"]
    assert plan["sysctls"] == {"net.ipv4.ip_forward": 1}
    assert all(len(ns["veth"]["host_addresses"]) == 1 and len(ns["routes"]) == 2 for ns in plan["namespaces"])


def test_the_plan_file_is_the_host_program_s_format_with_names_defined_once(plan):
    assert plan["role"] == "gateway" and plan["version"] == _host.PLAN_VERSION
    assert plan["nft_table"] == _names.GATEWAY_NFT_TABLE and plan["nft_file"] == _names.GATEWAY_NFT_FILE
    assert plan["paths"]["plan"] == _names.GATEWAY_PLAN == _host.plan_path("gateway", "/etc/splitroute")
    assert plan["paths"]["legacy_boot_script"] == "/usr/local/sbin/splitroute-gateway-boot"
    assert json.loads(json.dumps(plan)) == plan  # what the role writes is what the program reads
    # the filter still takes the table's name it was given before, and only that one
    assert gateway_plan_file(gateway_plan(PEERS, CLASSES, PROVIDERS, SETTINGS), "splitroute_gateway") == plan


def test_the_role_keeps_no_jinja_program_for_these_lists():
    root = Path(__file__).resolve().parents[4] / "roles" / "gateway"
    text = "\n".join(p.read_text() for p in root.rglob("*.yml"))
    for gone in ("__splitroute_gateway_rules", "__splitroute_gateway_routes", "__splitroute_gateway_provider_units",
                 "__splitroute_gateway_scope", "__splitroute_gateway_boot_script"):  # fmt: skip
        assert gone not in text, gone
    assert not (root / "templates" / "splitroute-gateway-boot.j2").exists()
