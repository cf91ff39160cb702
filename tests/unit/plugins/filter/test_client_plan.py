"""splitroute.vpn.client_plan: the client role's validation and numbering."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.splitroute.vpn.plugins.filter.client_plan import (
    client_domain_files,
    client_plan,
    client_secrets,
    client_settings,
)

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
# two more keys that appear nowhere else: a private key and a preshared key
PRIVATE = "sGpr1vATEk3yaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaA="
PRESHARED = "cPr3SHAREDk3ybbbbbbbbbbbbbbbbbbbbbbbbbbbbbA="
SETTINGS = {
    "set_timeout": 3600,
    "max_cache_ttl": 300,
    "max_ttl": 300,
    "table_base": 100,
    "priority_base": 1000,
    "back_port": 5301,
}
HOSTILE = ["fd00::2%x\nFZINJ=1", "fd00::2%x\nPreUp = touch /tmp/ran #"]


PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2Vy\n-----END CERTIFICATE-----\n"


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


def refused(tunnels, settings=None, lists=None, files=None):
    with pytest.raises(AnsibleFilterError) as err:
        client_plan(tunnels, dict(SETTINGS, **(settings or {})), lists or {}, files or {})
    return str(err.value)


def test_one_tunnel_gets_its_numbers_and_normalised_domains():
    lists = {"splitroute_client_domains__x": {"wg0": ["example.com", "api.example.net"]}}
    (plan,) = client_plan([tunnel()], SETTINGS, lists)
    assert (plan["fwmark"], plan["table"], plan["priority"], plan["back_port"]) == (1, 100, 1000, 5301)
    assert plan["domains"] == ["api.example.net", "example.com", "xn--bcher-kva.example"]
    assert plan["networks4"] == ["10.99.0.1/32"] and plan["networks6"] == ["fd10:99::1/128"]
    assert plan["peer"]["allowed_ips"] == ["0.0.0.0/0", "::/0"]


def test_second_tunnel_is_numbered_after_the_first():
    plans = client_plan([tunnel(), tunnel(name="wg1", domains=["example.org"])], SETTINGS)
    assert [(p["fwmark"], p["table"], p["priority"], p["back_port"]) for p in plans] == [
        (1, 100, 1000, 5301),
        (2, 101, 1010, 5302),
    ]


def test_domain_lists_from_several_variables_and_files_add_up():
    lists = {
        "splitroute_client_domains__b": {"wg0": ["b.example"]},
        "splitroute_client_domains__a": {"wg0": ["a.example"], "wg1": ["c.example"]},
    }
    files = {"lists/wg1.txt": "# streaming\nd.example  # trailing comment\n\n  e.example\n"}
    plans = client_plan(
        [tunnel(domains=[]), tunnel(name="wg1", domains=[], domain_files=["lists/wg1.txt"])], SETTINGS, lists, files
    )
    assert [p["domains"] for p in plans] == [["a.example", "b.example"], ["c.example", "d.example", "e.example"]]
    assert client_domain_files([tunnel(domain_files=["lists/wg1.txt"]), "junk", {"domain_files": "x"}]) == [
        "lists/wg1.txt"
    ]


@pytest.mark.parametrize(
    ("tunnels", "settings", "message"),
    [
        ([tunnel(domains=["evil.com\nserver=/#/1.1.1.1"])], {}, "evil.com"),
        ([tunnel(domains=["a/b.example"])], {}, "a/b.example"),
        ([tunnel(address=["fd10:99::10/128"])], {}, "IPv4 networks or dns need an IPv4 tunnel address"),
        ([tunnel(peer={"public_key": "short", "endpoint": "198.51.100.20:51820"})], {}, "not a WireGuard key"),
        ([tunnel(peer={"public_key": KEY, "endpoint": "2001:db8::1:51820"})], {}, "peer.endpoint"),
        ([tunnel(name="a-very-long-interface")], {}, "name"),
        ([tunnel(networks=["10.0.0.1/8"])], {}, "host bits set"),
        ([tunnel(users=["bad user"])], {}, "bad user"),
        # a trailing newline would end the line it is written into
        ([tunnel(users=["tunneluser\n"])], {}, "tunneluser"),
        ([tunnel(peer={"public_key": KEY, "endpoint": "198.51.100.20:51820\n"})], {}, "peer.endpoint"),
        ([tunnel(ports=[{"proto": "icmp", "port": 1}])], {}, "proto tcp or udp"),
        ([tunnel(), tunnel(name="wg1", domains=["example.com"])], {}, "listed for tunnels wg0 and wg1"),
        ([tunnel(), tunnel(name="wg1", table=100, domains=[])], {}, "share table 100"),
        ([tunnel(dns=[])], {}, "domains need dns"),
        ([tunnel()], {"set_timeout": 600}, "must be at least 1930 s"),
        ([tunnel(bogus=1)], {}, "splitroute_client_tunnels[0]: unknown keys bogus"),
        ([tunnel()], {"upstream_dns": ["not-an-ip"]}, "not-an-ip"),
        (
            [tunnel()],
            {"wireguard_userspace": "wireguard-go\nExecStartPre=/bin/sh -c evil"},
            "splitroute_client_wireguard_userspace",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(tunnels, settings, message):
    assert message in refused(tunnels, settings)


def test_domains_for_a_tunnel_that_does_not_exist_are_refused():
    assert "tunnels that do not exist: wg9" in refused([tunnel()], lists={"splitroute_client_domains__x": {"wg9": []}})


def test_a_userspace_implementation_by_name_or_path_is_accepted():
    for value in ("", None, "wireguard-go", "/usr/local/bin/boringtun-cli"):
        assert client_plan([tunnel()], dict(SETTINGS, wireguard_userspace=value))


def test_removing_needs_no_peer_key():
    """State absent (revert.yml): the gateway's key may be unknown, the plan still names the tunnels."""
    unknown = tunnel(peer={"public_key": "unknown", "endpoint": "198.51.100.20:51820", "preshared_key": "x"})
    assert "not a WireGuard key" in refused([unknown])
    (plan,) = client_plan([unknown], dict(SETTINGS, state="absent"))
    assert (plan["name"], plan["table"], plan["priority"]) == ("wg0", 100, 1000)
    assert plan["peer"]["public_key"] is None and plan["peer"]["preshared_key"] is False


# ---------------------------------------------------------------- 1. scope ids


def endpoint6(host):
    return tunnel(peer={"public_key": KEY, "endpoint": "[%s]:51820" % host})


@pytest.mark.parametrize("value", HOSTILE, ids=["FZINJ", "PreUp"])
@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda v: ([tunnel(address=["10.99.0.10/32", v])], {}), "splitroute_client_tunnels[0].address[1]"),
        (
            lambda v: ([tunnel(peer={"public_key": KEY, "endpoint": "198.51.100.20:51820", "allowed_ips": [v]})], {}),
            "splitroute_client_tunnels[0].peer.allowed_ips[0]",
        ),
        (lambda v: ([tunnel(dns=["10.99.0.1", v])], {}), "splitroute_client_tunnels[0].dns[1]"),
        (lambda v: ([tunnel(networks=[v])], {}), "splitroute_client_tunnels[0].networks[0]"),
        (lambda v: ([tunnel()], {"upstream_dns": [v]}), "splitroute_client_upstream_dns[0]"),
        (lambda v: ([endpoint6(v)], {}), "splitroute_client_tunnels[0].peer.endpoint"),
    ],
    ids=["address", "allowed_ips", "dns", "networks", "upstream_dns", "endpoint"],
)
def test_an_address_with_a_scope_id_is_refused_naming_the_field(make, field, value):
    tunnels, settings = make(value)
    message = refused(tunnels, settings)
    assert field in message, message
    assert "scope id" in message or "is not HOST:PORT" in message, message


@pytest.mark.parametrize("value", ["fd10:99::10%wg0", "fe80::1%eth0"])
def test_a_scope_id_alone_is_refused_too(value):
    """Not only the newline: a scope id means nothing in any of these fields."""
    assert "scope id" in refused([tunnel(dns=["10.99.0.1", value])])
    assert "scope id" in refused([endpoint6(value)])


def test_an_ipv6_endpoint_is_parsed():
    (plan,) = client_plan([endpoint6("2001:DB8::20")], SETTINGS)
    assert plan["peer"]["endpoint_host"] == "2001:db8::20"


# ---------------------------------------------------------------- 2. the kernel's tables and rules


@pytest.mark.parametrize(
    ("settings", "tunnels", "message"),
    [
        # tunnel 0 gets 250, but absent.yml's scope (table_base + 0..9) reaches 253-255
        ({"table_base": 250}, 1, "splitroute_client_table_base: tables 250-259 include the kernel's table 253"),
        ({"table_base": 250, "state": "absent"}, 1, "splitroute_client_table_base: tables 250-259"),
        ({"table_base": 250}, 5, "splitroute_client_tunnels[4].table: tables 254-254 include the kernel's table 254"),
        ({"table_base": 0}, 1, "splitroute_client_table_base"),
        ({"priority_base": 0}, 1, "splitroute_client_priority_base"),
        ({"priority_base": 32700}, 1, "splitroute_client_priority_base: priorities 32700-32799"),
        ({"priority_base": 32700, "state": "absent"}, 1, "splitroute_client_priority_base"),
    ],
)
def test_ranges_that_hold_the_kernels_tables_or_rules_are_refused(settings, tunnels, message):
    many = [tunnel(name="wg%d" % i, domains=[]) for i in range(tunnels)]
    assert message in refused(many, settings)


@pytest.mark.parametrize("table", [253, 254, 255, "254"])
def test_a_tunnel_given_a_kernel_table_is_refused(table):
    assert "splitroute_client_tunnels[0].table" in refused([tunnel(table=table)])


def test_a_range_clear_of_the_kernels_tables_is_accepted():
    plans = client_plan([tunnel(name="wg%d" % i, domains=[]) for i in range(3)], dict(SETTINGS, table_base=243))
    assert [p["table"] for p in plans] == [243, 244, 245]
    assert client_settings(dict(SETTINGS, priority_base=32666))["priority_base"] == 32666


# ---------------------------------------------------------------- 3. keys stay out of the plan


def keyed(**kw):
    return tunnel(
        private_key=PRIVATE,
        peer={"public_key": KEY, "endpoint": "198.51.100.20:51820", "preshared_key": PRESHARED},
        **kw,
    )


def test_the_plan_carries_no_key_material():
    (plan,) = client_plan([keyed()], SETTINGS)
    text = json.dumps(plan)
    assert PRIVATE not in text and PRESHARED not in text
    assert plan["private_key"] is True and plan["peer"]["preshared_key"] is True
    (plain,) = client_plan([tunnel()], SETTINGS)
    assert plain["private_key"] is False and plain["peer"]["preshared_key"] is False


def test_the_keys_reach_only_client_secrets():
    assert client_secrets([keyed(), tunnel(name="wg1")]) == {
        "wg0": {"private_key": PRIVATE, "preshared_key": PRESHARED},
        "wg1": {"private_key": None, "preshared_key": None},
    }
    # keys.yml asks for the private keys only: it never reads the peer (not known yet in the first play)
    unread = dict(keyed(), peer={"preshared_key": "not read"})
    assert client_secrets([unread], ["private_key"]) == {"wg0": {"private_key": PRIVATE, "preshared_key": None}}


@pytest.mark.parametrize("bad", [PRIVATE[:-2] + "\n=", PRIVATE + "x", PRIVATE[:-1]])
def test_a_bad_key_is_refused_without_showing_it(bad):
    for broken in (
        tunnel(private_key=bad),
        tunnel(peer={"public_key": KEY, "endpoint": "198.51.100.20:51820", "preshared_key": bad}),
    ):
        with pytest.raises(AnsibleFilterError) as err:
            client_secrets([broken])
        for message in (refused([broken]), str(err.value)):
            assert "not a WireGuard key" in message
            assert bad not in message and bad[:20] not in message


# ---------------------------------------------------------------- 4. a string is not a list


def test_a_string_for_a_domain_list_is_refused_never_split():
    message = refused([tunnel()], lists={"splitroute_client_domains__x": {"wg0": "netflix"}})
    assert "splitroute_client_domains__x['wg0']: must be a list, not str (write ['netflix'] for a list of one)" in (
        message
    )
    message = refused([tunnel(domains="netflix.com")])
    assert "splitroute_client_tunnels[0].domains: must be a list" in message
    message = refused([tunnel()], lists={"splitroute_client_domains__x": ["a"]})
    assert "splitroute_client_domains__x: must be a dict" in message


def test_domain_files_take_dnsmasq_and_hosts_lines_and_networks():
    """A list as published elsewhere: its domains join the tunnel's, its networks its static networks."""
    files = {
        "lists/mixed.txt": (
            "server=/srv.example/10.0.0.1\nnftset=/set.example/4#inet#t#s\n0.0.0.0 hosts.example\n"
            "203.0.113.0/24\n2001:db8:5::/48  # a v6 range\nplain.example\n"
        )
    }
    (plan,) = client_plan([tunnel(domains=[], domain_files=["lists/mixed.txt"])], SETTINGS, None, files)
    assert plan["domains"] == ["hosts.example", "plain.example", "set.example", "srv.example"]
    assert "203.0.113.0/24" in plan["networks4"] and "2001:db8:5::/48" in plan["networks6"]


def test_a_domain_file_line_that_is_not_a_domain_names_the_file_and_line():
    files = {"f.txt": "ok.example\nbad/one\n"}
    message = refused([tunnel(domain_files=["f.txt"])], files=files)
    assert "splitroute_client_tunnels[0].domain_files[0] (f.txt) line 2" in message
    # an injection attempt in any format is refused, with its line
    files = {"f.txt": "server=/a.example,b/10.0.0.1\n0.0.0.0 x.example#\n10.0.0.1/8\n"}
    message = refused([tunnel(domain_files=["f.txt"])], files=files)
    for number in (1, 2, 3):
        assert "(f.txt) line %d:" % number in message, message
    assert "splitroute_client_tunnels[0].domain_files: must be a list" in refused([tunnel(domain_files="f.txt")])


def test_domain_sources_are_checked_and_get_their_defaults_and_a_stable_id():
    sources = [
        "https://lists.example/a.txt",
        "/srv/lists/b.list",
        {"url": "http://lists.example/c.txt", "interval": "30m", "timeout": 5, "max_invalid": 0},
        {"url": "https://lists.example/d.txt", "sha256": "AB:" * 31 + "AB", "ca": PEM, "max_bytes": 1000},
    ]
    (plan,) = client_plan([tunnel(domain_sources=sources)], SETTINGS)
    got = plan["sources"]
    assert [s.get("url") or s.get("path") for s in got] == [
        "https://lists.example/a.txt", "/srv/lists/b.list", "http://lists.example/c.txt", "https://lists.example/d.txt",
    ]  # fmt: skip
    assert got[0]["interval"] == 86400 and got[0]["timeout"] == 30 and got[0]["max_invalid"] == 50
    assert got[2]["interval"] == 1800 and got[2]["timeout"] == 5 and got[2]["max_invalid"] == 0
    assert got[3]["sha256"] == "ab" * 32 and got[3]["ca"] == PEM and got[3]["max_bytes"] == 1000
    assert len({s["id"] for s in got}) == 4 and all(s["id"].startswith("wg0-") for s in got)
    (again,) = client_plan([tunnel(domain_sources=sources[::-1])], SETTINGS)
    assert {s["id"] for s in again["sources"]} == {s["id"] for s in got}  # by URL, not by position


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("ftp://lists.example/a", "only http and https URLs"),
        ("https://user:pw@lists.example/a", "credentials in a URL"),
        ("https://lists.example/a\nserver=/x/1.1.1.1", "without whitespace or control characters"),
        ("relative/path", "only http and https URLs"),
        ({"path": "/srv/../etc/shadow"}, "an absolute, normal path"),
        ({"url": "https://l.example/a", "path": "/a"}, "one of url or path"),
        ({"url": "https://l.example/a", "interval": 1}, "interval"),
        ({"url": "https://l.example/a", "interval": "often"}, "a duration like 30m"),
        ({"url": "http://l.example/a", "sha256": "ab" * 32}, "only for an https URL"),
        ({"url": "https://l.example/a", "sha256": "abc"}, "64 hex digits"),
        ({"url": "https://l.example/a", "ca": "not a certificate"}, "PEM"),
        ({"url": "https://l.example/a", "refresh": 5}, "unknown keys refresh"),
    ],
)
def test_a_bad_domain_source_is_refused_before_anything_changes(source, message):
    assert message in refused([tunnel(domain_sources=[source])])


def test_domain_sources_need_the_tunnel_s_resolver_and_are_given_once():
    assert "domain_sources need dns" in refused([tunnel(dns=[], domains=[], domain_sources=["https://l.example/a"])])
    assert "the same source twice" in refused([tunnel(domain_sources=["https://l.example/a", "https://l.example/a"])])


# ---------------------------------------------------------------- 5. names valid everywhere they go


@pytest.mark.parametrize("name", ["wg:0", "wg+0", "0wg", "-wg", "wg 0", "wg0\n", ".", "", "wg/0", "é"])
def test_a_name_that_some_place_would_refuse_is_refused(name):
    message = refused([tunnel(name=name)])
    assert "splitroute_client_tunnels[0].name" in message, message
    with pytest.raises(AnsibleFilterError, match=r"splitroute_client_tunnels\[0\]\.name"):
        client_secrets([tunnel(name=name)])


@pytest.mark.parametrize("name", ["wg0", "wg-0", "wg.0", "wg_0", "W" * 15])
def test_names_valid_for_the_interface_nft_and_systemd_pass(name):
    (plan,) = client_plan([tunnel(name=name)], SETTINGS)
    assert plan["sets4"] == [name + "_v4_a", name + "_v4_b"]
    assert plan["sets6"] == [name + "_v6_a", name + "_v6_b"]


# ---------------------------------------------------------------- 6. settings as -e gives them


def test_settings_given_as_strings_from_the_command_line_are_typed():
    given = {
        "set_timeout": "3600",
        "max_cache_ttl": "300",
        "max_ttl": "300",
        "cache_size": "10000",
        "table_base": "100",
        "priority_base": "1000",
        "back_port": "5302",
        "dns_redirect": "false",
        "tailscale": "yes",
        "upstream_dns": ["2001:DB8::53"],
    }
    (plan,) = client_plan([tunnel(mtu="1400", fwmark="7", users=["1001"])], given)
    numbers = (plan["back_port"], plan["table"], plan["mtu"], plan["fwmark"], plan["users"])
    assert numbers == (5302, 100, 1400, 7, [1001])
    settings = client_settings(given)
    assert settings["back_port"] == 5302 and settings["dns_redirect"] is False and settings["tailscale"] is True
    assert settings["upstream_dns"] == ["2001:db8::53"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"back_port": "53x"}, "splitroute_client_back_port: must be a number"),
        ({"dns_redirect": "maybe"}, "splitroute_client_dns_redirect: must be true or false"),
        ({"state": "gone"}, "splitroute_client_state: must be present or absent"),
        ({"upstream_dns": "1.1.1.1"}, "splitroute_client_upstream_dns: must be a list"),
    ],
)
def test_bad_settings_are_refused_by_both_filters(settings, message):
    assert message in refused([tunnel()], settings)
    with pytest.raises(AnsibleFilterError, match="invalid split-tunnel configuration") as err:
        client_settings(dict(SETTINGS, **settings))
    assert message in str(err.value)
