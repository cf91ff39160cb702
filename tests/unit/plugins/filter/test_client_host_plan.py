"""splitroute.vpn.client_host_plan and client_prune: the one plan of a client host (what the tasks,
the templates and the host program take as it is) and what a run removes."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.filter.client_plan import (
    client_host_plan,
    client_nft_sets,
    client_plan,
    client_prune,
    client_settings,
)
from ansible_collections.splitroute.vpn.plugins.module_utils import _dnsmasq, _host

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
SETTINGS = {"set_timeout": 3600, "max_cache_ttl": 300, "max_ttl": 300}
TUNNELS = [
    {
        "name": "wg0",
        "address": ["10.99.0.10/32", "fd10:99::10/128"],
        "peer": {"public_key": KEY, "endpoint": "198.51.100.20:51820"},
        "dns": ["10.99.0.1", "fd10:99::1"],
        "domains": ["example.com"],
    },
    {"name": "wg1", "address": ["10.97.0.10/32"], "peer": {"public_key": KEY, "endpoint": "198.51.100.20:51821"}},
]


def host(tunnels=None, settings=None):
    tunnels = TUNNELS if tunnels is None else tunnels
    settings = SETTINGS if settings is None else settings
    return client_host_plan(client_plan(tunnels, settings), client_settings(settings))


def test_the_plan_is_versioned_json_with_no_key_material():
    plan = host()
    assert plan["role"] == "client" and plan["version"] == _host.PLAN_VERSION
    text = json.dumps(plan)
    assert KEY in text  # the peers' public keys
    assert json.loads(text) == plan


def test_rules_routes_and_units_are_the_plan_s_as_the_tasks_take_them():
    plan = host()
    assert plan["rules"] == [
        {"priority": 1000, "fwmark": "1", "fwmask": "255", "table": "100"},
        {"priority": 1010, "fwmark": "2", "fwmask": "255", "table": "101"},
    ]
    assert plan["routes"] == [
        {"table": "100", "dest": "default", "dev": "wg0", "family": "4", "metric": 10},
        {"table": "100", "dest": "default", "dev": "wg0", "family": "6", "metric": 10},
        {"table": "100", "dest": "default", "type": "blackhole", "metric": 100},
        {"table": "101", "dest": "default", "dev": "wg1", "family": "4", "metric": 10},
        {"table": "101", "dest": "default", "type": "blackhole", "metric": 100},
    ]
    assert plan["boot_routes"] == [r for r in plan["routes"] if r.get("type") == "blackhole"]
    assert plan["scope"]["priorities"] == "1000-1099" and plan["scope"]["tables"] == ["100", "101"]
    assert plan["units"]["start"] == [
        "splitroute-client.service",
        "splitroute-dns-back@wg0.service",
        "splitroute-dns-front.service",
        "wg-quick@wg0.service",
        "wg-quick@wg1.service",
        "splitroute-client-preresolve.service",
        "splitroute-client-rotate.timer",
        "splitroute-client-lists.timer",
        "splitroute-client-health.service",
    ]
    assert plan["front_groups"] == [{"name": "wg0", "domains": ["example.com"], "back_server": "127.0.0.1#5301"}]
    assert list(plan["back_groups"]) == ["wg0"]


def test_the_back_resolver_gets_one_nftset_line_carrying_both_generations_of_both_families():
    groups = _dnsmasq.prepare_groups(host()["back_groups"]["wg0"], _dnsmasq.BACK)
    lines = [line for line in _dnsmasq.render(groups, _dnsmasq.BACK).splitlines() if line.startswith("nftset=")]
    assert lines == [
        "nftset=/#/4#inet#splitroute#wg0_v4_a,4#inet#splitroute#wg0_v4_b,"
        "6#inet#splitroute#wg0_v6_a,6#inet#splitroute#wg0_v6_b"
    ]


def test_the_rotation_comes_from_the_lifetimes_and_the_backstop_must_outlive_two():
    plan = host(settings={"set_timeout": 60, "max_cache_ttl": 5, "max_ttl": 5})
    assert plan["rotation"] == {"period": 20, "interval": 2, "removal_bound": 44}
    with pytest.raises(AnsibleFilterError, match=r"splitroute_client_set_timeout \(40 s\) must be at least 44 s"):
        client_settings({"set_timeout": 40, "max_cache_ttl": 5, "max_ttl": 5})


def test_client_prune_compares_the_host_s_previous_plan_with_the_new_one():
    old = json.dumps(host())
    new = host(TUNNELS[:1])
    listing = json.dumps(
        {
            "nftables": [
                {"metainfo": {}},
                {"table": {"family": "inet", "name": "splitroute"}},
                *({"set": {"family": "inet", "table": "splitroute", "name": n}} for n in ("wg0_v4_a", "wg1_v4_a")),
                {"set": {"family": "inet", "table": "other", "name": "wg1_v6_a"}},
            ]
        }
    )
    sets = client_nft_sets(listing)
    assert sets == ["wg0_v4_a", "wg1_v4_a"]
    dropins = ["/etc/systemd/system/wg-quick@wg1.service.d/splitroute.conf", "/etc/systemd/system/x.d/splitroute.conf"]
    out = client_prune(old, new, dropins, [], sets)
    assert out["tunnels"] == ["wg1"] and out["sets"] == ["wg1_v4_a"] and out["tables"] == ["101"]
    assert out["units"] == ["wg-quick@wg1.service"]  # wg1 had no back resolver
    # nothing on the host yet (a first run, check mode): nothing to remove
    assert not any(client_prune("", new, [], [], client_nft_sets("")).values())
    # state absent: the inventory's tunnels go too
    gone = client_prune("", None, [], [], [], inventory=new["tunnels"])
    assert gone["units"] == ["wg-quick@wg0.service", "splitroute-dns-back@wg0.service"]
