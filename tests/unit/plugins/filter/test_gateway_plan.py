"""splitroute.vpn.gateway_plan: the gateway role's validation and numbering."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import gateway_plan

KEY1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
KEY2 = "HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo="
SETTINGS = {
    "address": "10.4.0.1/24",
    "table_base": 200,
    "priority_base": 2000,
    "veth_network": "10.255.255.0/24",
    "local_networks": ["172.31.0.0/16"],
}
CLASSES = [{"range": "10.4.0.0/25", "exit": "direct"}, {"range": "10.4.0.128/25", "exit": "provider"}]
PROVIDERS = [{"name": "provider", "server": "198.51.100.30", "port": "1194", "config": "client\n"}]
PEERS = [
    {"name": "peer1", "address": "10.4.0.10", "public_key": KEY1},
    {"name": "peer2", "address": "10.4.0.130", "public_key": KEY2},
]


def plan(peers=None, classes=None, providers=None, settings=None):
    return gateway_plan(
        PEERS if peers is None else peers,
        CLASSES if classes is None else classes,
        PROVIDERS if providers is None else providers,
        SETTINGS if settings is None else settings,
    )


def test_the_exit_follows_from_the_address():
    result = plan()
    assert [(p["name"], p["exit"]) for p in result["peers"]] == [("peer1", "direct"), ("peer2", "provider")]
    assert result["subnet"] == "10.4.0.0/24"
    assert result["direct_ranges"] == ["10.4.0.0/25"]
    provider = result["providers"][0]
    assert provider["ranges"] == ["10.4.0.128/25"]
    assert (provider["table"], provider["priority"], provider["port"]) == (200, 2100, 1194)
    assert (provider["host_address"], provider["ns_address"]) == ("10.255.255.1", "10.255.255.2")
    assert provider["netns"] == "srgw-provider"
    assert "config" not in provider  # secrets stay in the role's variable


def test_several_providers_get_their_own_table_and_pair():
    providers = [*PROVIDERS, {"name": "other", "server": "198.51.100.50", "config": "client\n"}]
    classes = [
        *CLASSES[:1],
        {"range": "10.4.0.128/26", "exit": "provider"},
        {"range": "10.4.0.192/26", "exit": "other"},
    ]
    result = plan(classes=classes, providers=providers)
    assert [(p["table"], p["veth_network"]) for p in result["providers"]] == [
        (200, "10.255.255.0/30"),
        (201, "10.255.255.4/30"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"classes": [{"range": "10.4.0.0/25", "exit": "direct"}, {"range": "10.4.0.64/26", "exit": "provider"}]},
            "class 10.4.0.64/26: range overlaps class 10.4.0.0/25",
        ),
        ({"classes": [{"range": "10.5.0.0/25", "exit": "direct"}]}, "range is outside the peer subnet"),
        ({"classes": [{"range": "10.4.0.0/24", "exit": "nowhere"}]}, "exit 'nowhere' is neither direct"),
        (
            {"peers": [{"name": "far", "address": "10.5.0.10", "public_key": KEY1}]},
            "peer far: address 10.5.0.10 is outside the peer subnet 10.4.0.0/24",
        ),
        (
            {
                "peers": [
                    {"name": "a", "address": "10.4.0.20", "public_key": KEY1},
                    {"name": "b", "address": "10.4.0.21", "public_key": KEY1},
                ]
            },
            "peer b: public_key is the same as peer a's",
        ),
        (
            {"peers": [{"name": "a", "address": "10.4.0.20", "public_key": "nope"}]},
            "peer a: public_key is not a WireGuard key",
        ),
        ({"peers": [{"name": "a", "address": "10.4.0.1", "public_key": KEY1}]}, "is the gateway's or the subnet's own"),
        ({"providers": [{"name": "Bad-Name", "server": "x", "config": ""}]}, "name must be 1-10 lowercase"),
        (
            {"providers": [{"name": "p", "server": "198.51.100.30", "config": "c", "username": "u"}]},
            "give both username and password",
        ),
        (
            {"settings": dict(SETTINGS, wireguard_userspace="wireguard-go\nExecStart=/bin/sh")},
            "splitroute_gateway_wireguard_userspace",
        ),
    ],
)
def test_bad_input_is_one_clear_error(kwargs, message):
    with pytest.raises(AnsibleFilterError) as err:
        plan(**kwargs)
    assert "invalid gateway configuration" in str(err.value)
    assert message in str(err.value)


def test_every_problem_is_listed_at_once():
    peers = [
        {"name": "a", "address": "10.5.0.1", "public_key": KEY1},
        {"name": "b", "address": "10.4.0.2", "public_key": KEY1},
    ]
    classes = [{"range": "10.4.0.0/24", "exit": "direct"}, {"range": "10.4.0.0/25", "exit": "direct"}]
    with pytest.raises(AnsibleFilterError) as err:
        plan(peers=peers, classes=classes)
    text = str(err.value)
    assert "overlaps" in text
    assert "outside the peer subnet" in text
    assert "same as peer a's" in text
