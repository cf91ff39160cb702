"""Pruning on the gateway (issue 12): a provider removed from inventory is removed on the next run
- its resolver and OpenVPN units, its namespace and veth pair, its table's routes and rules, its
files - and nothing else (_host_gateway.prune, the gateway_prune filter)."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import (
    gateway_plan,
    gateway_plan_file,
    gateway_prune,
)
from ansible_collections.splitroute.vpn.plugins.module_utils import _host_gateway, _names

KEY1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
SETTINGS = {"address": "10.4.0.1/24", "table_base": 200, "priority_base": 2000}
ETC = _names.GATEWAY_ETC


def plan(*names):
    classes = [{"range": "10.4.0.0/26", "exit": "direct"}]
    classes += [{"range": "10.4.0.%d/26" % (64 * (i + 1)), "exit": n} for i, n in enumerate(names)]
    provs = [{"name": n, "server": "198.51.100.%d" % (30 + i), "config": "client\n"} for i, n in enumerate(names)]
    peers = [{"name": "laptop", "address": "10.4.0.10", "public_key": KEY1}]
    return json.loads(json.dumps(gateway_plan_file(gateway_plan(peers, classes, provs, SETTINGS))))


def test_prune_lists_only_the_removed_provider():
    out = _host_gateway.prune(plan("vpnco", "other"), plan("vpnco"))
    assert out == {
        "providers": ["other"],
        "units": ["splitroute-gateway-dns@other.service", "splitroute-gateway-openvpn@other.service"],
        "namespaces": [
            {"provider": "other", "name": "srgw-other", "veth": {"host_name": "srgw-other", "ns_name": "srgw0"}}
        ],
        "tables": ["201"],
        "files": sorted(
            [
                ETC + "/netns-other.nft",
                ETC + "/openvpn/other.conf",
                ETC + "/openvpn/other.auth",
                ETC + "/dnsmasq-other.conf",
            ]
        ),
    }


def test_prune_of_the_same_plan_is_empty():
    files = [ETC + "/netns-vpnco.nft", ETC + "/openvpn/vpnco.conf", ETC + "/netns-other.nft"]
    out = _host_gateway.prune(plan("vpnco", "other"), plan("vpnco", "other"), {"files": files})
    assert not any(out.values()), out


def test_the_first_provider_removed_frees_its_table_and_the_second_takes_its_place():
    """Providers are numbered by position: removing the first renumbers the second into table 200,
    so table 201 is the one emptied; the second's namespace is kept."""
    out = _host_gateway.prune(plan("vpnco", "other"), plan("other"))
    assert out["providers"] == ["vpnco"] and out["tables"] == ["201"]
    assert [ns["name"] for ns in out["namespaces"]] == ["srgw-vpnco"]


def test_prune_finds_the_role_s_files_without_a_previous_plan():
    """No previous plan (a failed run, an earlier release): the namespace tables and profiles the role
    wrote name the providers; other files in the same directories name none."""
    files = [
        ETC + "/netns-old.nft",
        ETC + "/openvpn/gone.conf",
        ETC + "/openvpn/vpnco.conf",
        ETC + "/dnsmasq.conf",
        ETC + "/dnsmasq-vpnco.conf",
        ETC + "/gateway.nft",
        ETC + "/netns-Bad.nft",
    ]
    out = gateway_prune("", plan("vpnco"), files)
    assert out["providers"] == ["gone", "old"]
    assert out["tables"] == []  # unknown without the plan: policy_rule's priority scope takes the rules
    assert out["units"] == [
        "splitroute-gateway-dns@gone.service",
        "splitroute-gateway-openvpn@gone.service",
        "splitroute-gateway-dns@old.service",
        "splitroute-gateway-openvpn@old.service",
    ]
    assert not [f for f in out["files"] if "vpnco" in f]


def test_the_filter_reads_the_slurped_plan_and_ignores_another_role_s():
    old = json.dumps(plan("vpnco", "other"))
    assert gateway_prune(old, plan("vpnco"))["providers"] == ["other"]
    assert gateway_prune("{", plan("vpnco"))["providers"] == []
    assert gateway_prune(json.dumps({"role": "client", "providers": [{"name": "x"}]}), plan())["providers"] == []
    with pytest.raises(AnsibleFilterError, match="gateway_prune expects the plan"):
        gateway_prune(old, None)


def test_every_provider_removed_empties_every_table():
    out = gateway_prune(json.dumps(plan("vpnco", "other")), plan())
    assert out["providers"] == ["other", "vpnco"] and out["tables"] == ["200", "201"]
