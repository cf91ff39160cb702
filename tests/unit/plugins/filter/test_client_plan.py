"""splitroute.vpn.client_plan: the client role's validation and numbering."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.filter.client_plan import client_plan

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
SETTINGS = {
    "set_timeout": 3600,
    "max_cache_ttl": 300,
    "max_ttl": 300,
    "table_base": 100,
    "priority_base": 1000,
    "back_port": 5301,
}


def tunnel(**kw):
    base = {
        "name": "wg0",
        "address": ["10.99.0.10/32", "fd10:99::10/128"],
        "peer": {"public_key": KEY, "endpoint": "198.51.100.20:51820"},
        "dns": ["10.99.0.1", "fd10:99::1"],
        "domains": ["Example.COM.", "bücher.example"],
    }
    base.update(kw)
    return base


def test_one_tunnel_gets_its_numbers_and_normalised_domains():
    (plan,) = client_plan([tunnel()], {"wg0": ["example.com", "api.example.net"]}, SETTINGS)
    assert (plan["fwmark"], plan["table"], plan["priority"], plan["back_port"]) == (1, 100, 1000, 5301)
    assert plan["domains"] == ["api.example.net", "example.com", "xn--bcher-kva.example"]
    assert plan["networks4"] == ["10.99.0.1/32"] and plan["networks6"] == ["fd10:99::1/128"]
    assert plan["peer"]["allowed_ips"] == ["0.0.0.0/0", "::/0"]


def test_second_tunnel_is_numbered_after_the_first():
    plans = client_plan([tunnel(), tunnel(name="wg1", domains=["example.org"])], {}, SETTINGS)
    assert [(p["fwmark"], p["table"], p["priority"], p["back_port"]) for p in plans] == [
        (1, 100, 1000, 5301),
        (2, 101, 1010, 5302),
    ]


@pytest.mark.parametrize(
    ("tunnels", "extra", "settings", "message"),
    [
        ([tunnel(domains=["evil.com\nserver=/#/1.1.1.1"])], {}, {}, "evil.com"),
        ([tunnel(domains=["a/b.example"])], {}, {}, "a/b.example"),
        ([tunnel(address=["fd10:99::10/128"])], {}, {}, "IPv4 networks or dns need an IPv4 tunnel address"),
        ([tunnel(peer={"public_key": "short", "endpoint": "198.51.100.20:51820"})], {}, {}, "not a WireGuard key"),
        ([tunnel(peer={"public_key": KEY, "endpoint": "2001:db8::1:51820"})], {}, {}, "peer.endpoint"),
        ([tunnel(name="a-very-long-interface")], {}, {}, "name"),
        ([tunnel(networks=["10.0.0.1/8"])], {}, {}, "host bits set"),
        ([tunnel(users=["bad user"])], {}, {}, "bad user"),
        # a trailing newline would end the line it is written into
        ([tunnel(users=["tunneluser\n"])], {}, {}, "tunneluser"),
        ([tunnel(peer={"public_key": KEY, "endpoint": "198.51.100.20:51820\n"})], {}, {}, "peer.endpoint"),
        ([tunnel(ports=[{"proto": "icmp", "port": 1}])], {}, {}, "proto tcp or udp"),
        ([tunnel(), tunnel(name="wg1", domains=["example.com"])], {}, {}, "listed for tunnels wg0 and wg1"),
        ([tunnel(), tunnel(name="wg1", table=100, domains=[])], {}, {}, "share table 100"),
        ([tunnel()], {"wg9": ["x.example"]}, {}, "tunnels that do not exist: wg9"),
        ([tunnel(dns=[])], {}, {}, "domains need dns"),
        ([tunnel()], {}, {"set_timeout": 600}, "must exceed"),
        ([tunnel(bogus=1)], {}, {}, "unknown keys bogus"),
        ([tunnel()], {}, {"upstream_dns": ["not-an-ip"]}, "not-an-ip"),
        (
            [tunnel()],
            {},
            {"wireguard_userspace": "wireguard-go\nExecStartPre=/bin/sh -c evil"},
            "splitroute_client_wireguard_userspace",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(tunnels, extra, settings, message):
    with pytest.raises(AnsibleFilterError) as err:
        client_plan(tunnels, extra, dict(SETTINGS, **settings))
    assert message in str(err.value)


def test_a_userspace_implementation_by_name_or_path_is_accepted():
    for value in ("", "wireguard-go", "/usr/local/bin/boringtun-cli"):
        assert client_plan([tunnel()], {}, dict(SETTINGS, wireguard_userspace=value))


def test_removing_needs_no_peer_key():
    """State absent (revert.yml): the gateway's key may be unknown, the plan still names the tunnels."""
    unknown = tunnel(peer={"public_key": "unknown", "endpoint": "198.51.100.20:51820", "preshared_key": "x"})
    with pytest.raises(AnsibleFilterError, match="not a WireGuard key"):
        client_plan([unknown], {}, SETTINGS)
    (plan,) = client_plan([unknown], {}, dict(SETTINGS, state="absent"))
    assert (plan["name"], plan["table"], plan["priority"]) == ("wg0", 100, 1000)
    assert plan["peer"]["public_key"] is None and plan["peer"]["preshared_key"] is None
