"""splitroute.vpn.gateway_plan: the gateway role's validation and numbering."""

from __future__ import annotations

import base64

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import (
    FilterModule,
    gateway_genkey,
    gateway_plan,
    gateway_pubkey,
)
from ansible_collections.splitroute.vpn.plugins.module_utils import _host_gateway

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
        (
            {"providers": [{"name": "Bad-Name", "server": "x", "config": ""}]},
            "splitroute_gateway_providers[0].name 'Bad-Name': must be 1-10 lowercase",
        ),
        (
            {"providers": [{"name": "p", "server": "198.51.100.30", "config": "c", "username": "u"}]},
            "give both username and password",
        ),
        (
            {"settings": dict(SETTINGS, wireguard_userspace="wireguard-go\nExecStart=/bin/sh")},
            "splitroute_gateway_wireguard_userspace",
        ),
        ({"settings": dict(SETTINGS, uplink='eth0" accept\n')}, "splitroute_gateway_uplink"),
        ({"settings": dict(SETTINGS, interface="wg0\nPostUp=x")}, "splitroute_gateway_interface"),
        (
            {"settings": dict(SETTINGS, dns_records=[{"name": "vault.lan\nserver=6.6.6.6", "address": "10.4.0.7"}])},
            "is not a DNS name",
        ),
        (
            {"settings": dict(SETTINGS, dns_records=[{"name": "vault.lan", "address": "10.4.0.7,6.6.6.6"}])},
            "splitroute_gateway_dns_records[0].address '10.4.0.7,6.6.6.6' is invalid",
        ),
        (
            {"settings": dict(SETTINGS, dns_upstreams=["9.9.9.9\naddress=/#/6.6.6.6"])},
            "splitroute_gateway_dns_upstreams[0] '9.9.9.9\\naddress=/#/6.6.6.6' is invalid",
        ),
        ({"settings": dict(SETTINGS, dns_upstreams=[])}, "must name at least one resolver"),
        (
            {"providers": [dict(PROVIDERS[0], dns_upstreams=["2001:db8::53"])]},
            "splitroute_gateway_providers[0].dns_upstreams[0] '2001:db8::53' is not an IPv4 address",
        ),
        (
            {"settings": dict(SETTINGS, dns_upstreams=["2001:db8::53"])},
            "provider provider: its resolver needs an IPv4 upstream",
        ),
        ({"settings": dict(SETTINGS, dns_port_base=50)}, "splitroute_gateway_dns_port_base: 50 is outside 1024-65535"),
        ({"settings": dict(SETTINGS, dns_port_base=65536)}, "splitroute_gateway_dns_port_base: 65536 is outside"),
        (
            {
                "settings": dict(SETTINGS, dns_port_base=65535),
                "providers": [*PROVIDERS, {"name": "other", "server": "198.51.100.50", "config": "c"}],
            },
            "splitroute_gateway_dns_port_base leaves no room for 2 resolver ports",
        ),
        (
            {"providers": [dict(PROVIDERS[0], username="user\nremote evil", password="p")]},
            "splitroute_gateway_providers[0].username: must be a string on one line",
        ),
        (
            {"peers": [{"name": "phone", "address": "10.4.0.140"}]},
            "splitroute_gateway_endpoint (the gateway's public address or name) is needed by the peers without"
            " public_key: phone",
        ),
        (
            {
                "peers": [{"name": "phone", "address": "10.4.0.140"}],
                "settings": dict(SETTINGS, endpoint="vpn.example.net:51820\nPostUp=x"),
            },
            "is neither an IP address (without a scope id) nor a DNS name",
        ),
        (
            {"peers": [dict(PEERS[0], allowed_ips=["0.0.0.0/0"])]},
            "peer peer1: allowed_ips is only for peers without public_key",
        ),
        (
            {
                "peers": [{"name": "phone", "address": "10.4.0.140", "allowed_ips": ["10.4.0.1/24"]}],
                "settings": dict(SETTINGS, endpoint="198.51.100.40"),
            },
            "splitroute_gateway_peers[0].allowed_ips[0] '10.4.0.1/24' is invalid: 10.4.0.1/24 has host bits set",
        ),
        ({"settings": dict(SETTINGS, keepalive=-1)}, "splitroute_gateway_peer_keepalive"),
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


def test_each_provider_has_a_resolver_that_asks_through_it():
    settings = dict(SETTINGS, dns_upstreams=["198.51.100.253", "2001:db8:100::53"], dns_port_base=5310)
    providers = [*PROVIDERS, {"name": "other", "server": "198.51.100.50", "config": "c", "dns_upstreams": ["10.8.0.1"]}]
    classes = [
        *CLASSES[:1],
        {"range": "10.4.0.128/26", "exit": "provider"},
        {"range": "10.4.0.192/26", "exit": "other"},
    ]
    result = plan(classes=classes, providers=providers, settings=settings)
    assert result["dns_upstreams"] == ["198.51.100.253", "2001:db8:100::53"]
    first, second = result["providers"]
    # the role's IPv4 upstreams by default (queries leave from the veth's IPv4 address), or its own
    assert (first["dns_port"], first["dns_upstreams"]) == (5310, ["198.51.100.253"])
    assert (second["dns_port"], second["dns_upstreams"]) == (5311, ["10.8.0.1"])


def test_dns_records_are_normalised():
    settings = dict(SETTINGS, dns_records=[{"name": "vault.raff.local.", "address": "10.4.0.7"}])
    assert plan(settings=settings)["dns_records"] == [{"name": "vault.raff.local", "address": "10.4.0.7"}]


def test_a_peer_without_public_key_is_unmanaged():
    peers = [
        *PEERS,
        {"name": "phone", "address": "10.4.0.140"},
        {"name": "laptop", "address": "10.4.0.20", "allowed_ips": ["10.4.0.0/24", "198.51.100.128/25"]},
    ]
    result = plan(peers=peers, settings=dict(SETTINGS, endpoint="198.51.100.40", endpoint_port=443, keepalive=0))
    by_name = {p["name"]: p for p in result["peers"]}
    assert by_name["peer1"]["managed"] is True
    assert by_name["phone"]["managed"] is False
    assert by_name["phone"]["public_key"] is None
    assert (by_name["phone"]["exit"], by_name["phone"]["allowed_ips"]) == ("provider", ["0.0.0.0/0"])
    assert by_name["laptop"]["allowed_ips"] == ["10.4.0.0/24", "198.51.100.128/25"]
    assert [p["name"] for p in result["unmanaged"]] == ["phone", "laptop"]
    assert (result["endpoint"], result["endpoint_port"], result["keepalive"]) == ("198.51.100.40", 443, 0)


@pytest.mark.parametrize(
    ("endpoint", "port", "expected"),
    [
        ("vpn.example.net", 0, ("vpn.example.net", 51820)),
        ("2001:db8:113::40", 0, ("[2001:db8:113::40]", 51820)),
        ("198.51.100.40", 51000, ("198.51.100.40", 51000)),
    ],
)
def test_the_endpoint_is_written_as_wireguard_reads_it(endpoint, port, expected):
    settings = dict(SETTINGS, endpoint=endpoint, endpoint_port=port, port=51820)
    result = plan(peers=[{"name": "phone", "address": "10.4.0.140"}], settings=settings)
    assert (result["endpoint"], result["endpoint_port"]) == expected


def test_genkey_makes_clamped_keys_that_pubkey_reads():
    keys = {gateway_genkey() for _attempt in range(20)}
    assert len(keys) == 20
    for key in keys:
        raw = base64.b64decode(key, validate=True)
        assert len(raw) == 32
        assert raw[0] & 7 == 0
        assert raw[31] & 128 == 0
        assert raw[31] & 64 == 64
        assert len(base64.b64decode(gateway_pubkey(key))) == 32


def test_pubkey_matches_rfc7748():
    """RFC 7748 section 6.1: Alice's X25519 private and public keys."""
    private = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    public = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert gateway_pubkey(base64.b64encode(private).decode()) == base64.b64encode(public).decode()


def test_pubkey_never_echoes_a_bad_key():
    secret = "not-a-key-but-maybe-a-secret"
    with pytest.raises(AnsibleFilterError) as err:
        gateway_pubkey(secret)
    assert secret not in str(err.value)


def test_the_filters_are_exported():
    assert set(FilterModule().filters()) == {
        "gateway_plan",
        "gateway_plan_file",
        "gateway_prune",
        "gateway_secrets",
        "gateway_genkey",
        "gateway_pubkey",
        "gateway_input_guard",
    }


SETTINGS6 = dict(SETTINGS, address6="fd10:4::1/64", veth_network6="fd00:255:255::/64")
CLASSES6 = [
    {"range": "10.4.0.0/25", "range6": "fd10:4::/116", "exit": "direct"},
    {"range": "10.4.0.128/25", "range6": "fd10:4::1000/116", "exit": "provider"},
]


def test_ipv6_follows_the_same_classes():
    peers = [
        dict(PEERS[0], address6="fd10:4::10"),
        dict(PEERS[1], address6="fd10:4::1130"),
        {"name": "phone", "address": "10.4.0.140", "address6": "fd10:4::1140"},
    ]
    result = plan(peers=peers, classes=CLASSES6, settings=dict(SETTINGS6, endpoint="198.51.100.40"))
    assert (result["address6"], result["ip6"], result["subnet6"]) == ("fd10:4::1/64", "fd10:4::1", "fd10:4::/64")
    assert result["direct_ranges6"] == ["fd10:4::/116"]
    provider = result["providers"][0]
    assert provider["ranges6"] == ["fd10:4::1000/116"]
    assert (provider["host_address6"], provider["ns_address6"]) == ("fd00:255:255::1", "fd00:255:255::2")
    by_name = {p["name"]: p for p in result["peers"]}
    assert by_name["peer2"]["address6"] == "fd10:4::1130"
    assert by_name["phone"]["allowed_ips"] == ["0.0.0.0/0", "::/0"]


def test_local_networks_of_both_families_go_by_main_from_their_own_subnet():
    settings = dict(SETTINGS6, local_networks=["172.31.0.0/16", "2001:DB8:100::13/128"])
    result = plan(classes=CLASSES6, settings=settings)
    assert (result["local_networks"], result["local_networks6"]) == (["172.31.0.0/16"], ["2001:db8:100::13/128"])
    local = [r for r in _host_gateway._rules(result) if r["priority"] in (2001, 2002)]
    assert local == [
        {"priority": 2001, "from": "10.4.0.0/24", "to": "172.31.0.0/16", "table": "main"},
        {"priority": 2002, "from": "fd10:4::/64", "to": "2001:db8:100::13/128", "table": "main"},
    ]


def test_ipv6_is_off_without_address6():
    result = plan()
    assert (result["address6"], result["direct_ranges6"]) == (None, [])
    assert "host_address6" not in result["providers"][0]
    assert result["peers"][0]["address6"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": CLASSES6}, "class 10.4.0.0/25: range6 needs splitroute_gateway_address6"),
        (
            {"settings": dict(SETTINGS, local_networks=["fd10:77::/48"])},
            "splitroute_gateway_local_networks[0]: fd10:77::/48 is IPv6, and the peers have no IPv6",
        ),
        ({"peers": [dict(PEERS[0], address6="fd10:4::10")]}, "peer peer1: address6 needs splitroute_gateway_address6"),
        (
            {"settings": dict(SETTINGS6, address6="fd10:4::1")},
            "splitroute_gateway_address6 'fd10:4::1' is invalid: a prefix length is required",
        ),
        (
            {"settings": dict(SETTINGS6, address6="10.4.0.1/24")},
            "splitroute_gateway_address6 '10.4.0.1/24' is not an IPv6",
        ),
        (
            {"settings": dict(SETTINGS6, veth_network6="fd10:4::/64"), "classes": CLASSES6},
            "splitroute_gateway_veth_network6 fd10:4::/64 must lie outside the peer subnet fd10:4::/64",
        ),
        (
            {"classes": [dict(CLASSES6[0], range6="fd10:5::/116"), CLASSES6[1]], "settings": SETTINGS6},
            "range6 fd10:5::/116 is outside the IPv6 peer subnet fd10:4::/64",
        ),
        (
            {"classes": [dict(CLASSES6[0], range6="fd10:4::/64"), CLASSES6[1]], "settings": SETTINGS6},
            "range6 fd10:4::1000/116 overlaps range6 fd10:4::/64",
        ),
        (
            {"peers": [dict(PEERS[0], address6="fd10:4::1010")], "classes": CLASSES6, "settings": SETTINGS6},
            "peer peer1: address6 fd10:4::1010 is in a class with exit provider, its address in one with exit direct",
        ),
        (
            {"peers": [dict(PEERS[0], address6="fd10:9::10")], "classes": CLASSES6, "settings": SETTINGS6},
            "peer peer1: address6 fd10:9::10 is outside the IPv6 peer subnet fd10:4::/64",
        ),
        (
            {"peers": [dict(PEERS[0], address6="fd10:4::10")], "settings": SETTINGS6},
            "peer peer1: address6 fd10:4::10 is in no address class (range6)",
        ),
        (
            {
                "peers": [
                    dict(PEERS[0], address6="fd10:4::10"),
                    dict(PEERS[1], address="10.4.0.11", address6="fd10:4::10"),
                ],
                "classes": CLASSES6,
                "settings": SETTINGS6,
            },
            "peer peer2: address6 fd10:4::10 is peer peer1's too",
        ),
    ],
)
def test_bad_ipv6_input_is_one_clear_error(kwargs, message):
    with pytest.raises(AnsibleFilterError) as err:
        plan(**kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"providers": [dict(PROVIDERS[0], name="provider\n")]}, "splitroute_gateway_providers[0].name 'provider\\n'"),
        ({"peers": [dict(PEERS[0], name="peer1\n"), PEERS[1]]}, "splitroute_gateway_peers[0].name 'peer1\\n'"),
        ({"settings": dict(SETTINGS, dns_records=[{"name": "vault.lan\n", "address": "10.4.0.7"}])}, "vault.lan"),
    ],
)
def test_a_trailing_newline_is_refused(kwargs, message):
    """`$` also matches before a final newline; the names end up in unit, file and config lines."""
    with pytest.raises(AnsibleFilterError) as err:
        plan(**kwargs)
    assert message in str(err.value)


def test_removing_needs_no_peer_key():
    """State absent (revert.yml): a client that has no key (yet, or any more) does not stop the removal."""
    peers = [dict(PEERS[0], public_key="unknown"), dict(PEERS[1], preshared_key="x")]
    with pytest.raises(AnsibleFilterError, match="not a WireGuard key"):
        plan(peers=peers)
    result = plan(peers=peers, settings=dict(SETTINGS, state="absent"))
    assert [(p["name"], p["public_key"], bool(p["preshared_key"])) for p in result["peers"]] == [
        ("peer1", None, False),
        ("peer2", None, False),
    ]
    assert result["providers"][0]["table"] == 200


# ---------------------------------------------------------------- ordered providers (issue 15)

TWO = [
    dict(PROVIDERS[0], fallback=["second"]),
    {"name": "second", "server": "198.51.100.30", "port": 1195, "config": "client\n", "dns_upstreams": ["10.8.0.1"]},
]


def test_a_provider_with_a_fallback_is_a_failover_group_in_the_plan_file():
    """provider falls back to second: splitroute health owns table 200's default route (only the blackhole is
    the role's), checks both providers inside their namespaces, and gives provider's resolver the upstreams of
    the provider in use, asked from provider's veth address (routed back to it from second's namespace)."""
    from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import gateway_plan_file  # noqa: PLC0415

    out = gateway_plan_file(plan(providers=TWO))
    fo = out["failover"]
    assert fo["state"] == "/run/splitroute/gateway-health.json"
    assert fo["groups"] == [
        {"tunnel": "provider", "kind": "provider", "order": ["provider", "second"], "table": 200, "fwmark": None,
         "families": [4], "sticky": False, "dns": ["9.9.9.9"], "dns_source": "10.255.255.1",
         "servers_file": "/run/splitroute/gateway-dns/provider-servers.conf",
         "back_unit": "splitroute-gateway-dns@provider.service"}
    ]  # fmt: skip
    second = fo["exits"]["second"]
    assert second["interface"] == "srgw-second" and second["via"] == {"4": "10.255.255.6", "6": None}
    assert second["netns"] == "srgw-second" and second["tunnel"] == "tun" and second["dns"] == ["10.8.0.1"]
    assert second["targets"] == ["10.8.0.1"] and second["check"]["handshake_max_age"] == 0
    assert fo["exits"]["provider"]["targets"] == ["9.9.9.9"]
    # table 200: the blackhole only; table 201 (no fallback): its route into the namespace as before
    assert [r for r in out["routes"] if r["table"] == "200"] == [
        {"table": "200", "dest": "default", "type": "blackhole", "family": "4", "metric": 100}
    ]
    assert any(r["table"] == "201" and r.get("via") == "10.255.255.6" for r in out["routes"])
    assert out["scope"]["tables"] == ["201"] and out["scope"]["all_tables"] == ["200", "201"]
    assert {"dest": "10.255.255.1/32", "via": "10.255.255.5"} in out["namespaces"][1]["routes"]
    assert {"dest": "10.255.255.5/32", "via": "10.255.255.1"} not in out["namespaces"][0]["routes"]
    assert out["units"]["start"][-1] == "splitroute-gateway-health.service"
    assert out["units"]["stop"][0] == "splitroute-gateway-health.service"
    assert out["servers_files"] == {"provider": "/run/splitroute/gateway-dns/provider-servers.conf"}


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        ([dict(PROVIDERS[0], fallback=["provider"])], "provider provider: fallback names the provider itself"),
        ([dict(PROVIDERS[0], fallback=["nope"])], "provider provider: fallback names nope, which is not a provider"),
        ([dict(TWO[0], fallback=["second", "second"]), TWO[1]], "provider provider: fallback names second twice"),
        ([dict(PROVIDERS[0], fallback="second"), TWO[1]], "splitroute_gateway_providers[0].fallback"),
        ([dict(PROVIDERS[0], fallback=["Bad Name"]), TWO[1]], "fallback[0]: 'Bad Name' is not a provider name"),
        ([TWO[0], dict(TWO[1], health={"method": "tcp"})], "[1].health.method: 'tcp' is not one of icmp, http"),
        ([TWO[0], dict(TWO[1], health={"handshake_max_age": 10})], "[1].health: unknown keys handshake_max_age"),
        ([TWO[0], dict(TWO[1], health={"targets": ["10.0.0.1\nserver=6.6.6.6"]})], "providers[1].health.targets[0]"),
        ([TWO[0], dict(TWO[1], health={"targets": ["2001:db8::1"]})], "2001:db8::1 needs an IPv6 address on the exit"),
        ([TWO[0], dict(TWO[1], health={"path": "/x\r\nHost: y"})], "providers[1].health.path: an HTTP path"),
        ([TWO[0], dict(TWO[1], health={"interval": 2, "timeout": 5})], "providers[1].health.timeout: at most"),
        ([TWO[0], dict(TWO[1], health={"targets": []})], "give at least one address to probe through the provider"),
    ],
)
def test_bad_failover_input_is_one_clear_error(providers, message):
    with pytest.raises(AnsibleFilterError) as err:
        plan(providers=providers)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("bypass", "message"),
    [
        ({"quic": True}, "splitroute_gateway_dns_bypass.quic: the gateway routes its peers by address"),
        ({"https_records": True}, "splitroute_gateway_dns_bypass.https_records: the gateway routes"),
        ({"dot": "yes please"}, "splitroute_gateway_dns_bypass.dot: must be true or false"),
        ({"doh": True, "doh_addresses": ["1.1.1.1\naddress=/#/6.6.6.6"]}, "dns_bypass.doh_addresses[0]"),
        ({"canary": True}, "splitroute_gateway_dns_bypass: unknown keys canary"),
        ("on", "splitroute_gateway_dns_bypass"),
    ],
)
def test_a_bad_dns_bypass_is_refused(bypass, message):
    with pytest.raises(AnsibleFilterError) as err:
        plan(settings=dict(SETTINGS, dns_bypass=bypass))
    assert message in str(err.value)


def test_the_dns_bypass_lets_dot_reach_the_resolvers_upstreams_only():
    out = plan(providers=TWO, settings=dict(SETTINGS, dns_bypass={"dot": True, "dot_allow": ["192.0.2.0/28"]}))
    assert out["bypass"]["dot_allow4"] == ["192.0.2.0/28", "9.9.9.9/32", "10.8.0.1/32"]
    assert out["bypass"]["doh4"] == [] and out["bypass"]["dot"] and not out["bypass"]["doh"]


# ---------------------------------------------------------------- seed 004's input policy (issue 18)


def test_the_input_policy_is_off_by_default_and_takes_the_peers_dns_ports_when_on():
    assert plan()["input_policy"]["enabled"] is False
    policy = {"enabled": True, "ssh_from": ["192.0.2.0/24", "2001:db8:7::/48"], "allow": [{"proto": "udp", "port": 68}]}
    out = plan(providers=TWO, settings=dict(SETTINGS, input_policy=policy))["input_policy"]
    assert out == {"enabled": True, "ssh_from4": ["192.0.2.0/24"], "ssh_from6": ["2001:db8:7::/48"], "ssh_port": 22,
                   "allow": [{"proto": "udp", "port": 68}], "dns_ports": [53, 5300, 5301]}  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"enabled": True}, "input_policy.ssh_from: give the networks SSH may come from"),
        ({"enabled": True, "ssh_from": []}, "with none the policy would lock the operator out"),
        ({"enabled": True, "ssh_from": ["192.0.2.0/24\ntcp dport 1-65535 accept"]}, "input_policy.ssh_from[0]"),
        ({"enabled": True, "ssh_from": "192.0.2.0/24"}, "input_policy.ssh_from"),
        ({"enabled": "maybe", "ssh_from": ["192.0.2.0/24"]}, "input_policy.enabled: must be true or false"),
        ({"enabled": True, "ssh_from": ["192.0.2.0/24"], "ssh_port": 0}, "input_policy.ssh_port"),
        (
            {"enabled": True, "ssh_from": ["192.0.2.0/24"], "allow": [{"proto": "sctp", "port": 1}]},
            "must be tcp or udp",
        ),
        ({"enabled": True, "ssh_from": ["192.0.2.0/24"], "allow": [{"proto": "udp", "port": "1 accept"}]}, "port"),
        ({"enable": True}, "splitroute_gateway_input_policy: unknown keys enable"),
    ],
)
def test_a_bad_input_policy_is_refused(policy, message):
    with pytest.raises(AnsibleFilterError) as err:
        plan(settings=dict(SETTINGS, input_policy=policy))
    assert message in str(err.value)


def test_the_lockout_guard_refuses_a_policy_that_would_cut_this_runs_ssh():
    from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import gateway_input_guard  # noqa: PLC0415

    policy = {"enabled": True, "ssh_from": ["192.0.2.0/24", "2001:db8:7::/48"]}
    out = plan(settings=dict(SETTINGS, input_policy=policy))
    assert gateway_input_guard(out, "192.0.2.9 51234 10.4.0.1 22") == ""
    assert gateway_input_guard(out, "2001:db8:7::9 51234 2001:db8::1 22") == ""
    assert gateway_input_guard(out, "") == ""  # not by SSH (a console, a container's exec)
    assert "would lock out this run: it comes by SSH from 198.51.100.7" in gateway_input_guard(
        out, "198.51.100.7 51234 10.4.0.1 22"
    )
    assert "port 2222" in gateway_input_guard(out, "192.0.2.9 51234 10.4.0.1 2222")
    assert gateway_input_guard(plan(), "198.51.100.7 51234 10.4.0.1 22") == ""  # no policy
