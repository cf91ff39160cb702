"""client_upstreams: the resolvers for unlisted names, from inventory or from the host's resolv.conf text."""

from __future__ import annotations

from ansible_collections.splitroute.vpn.plugins.filter.client_plan import (
    client_key_args,
    client_upstreams,
    resolv_nameservers,
)

RESOLV = """# from the host
nameserver 127.0.0.53
nameserver 192.0.2.53
nameserver ::1
search example.org
nameserver 2001:db8::53
nameserver fe80::1%eth0
nameserver 192.0.2.53
nameserver 192.0.2.54;reboot
nameserver
 nameserver 198.51.100.1 trailing words
"""


def test_given_upstreams_win_over_the_hosts_file():
    assert client_upstreams([RESOLV], ["9.9.9.9"]) == ["9.9.9.9"]


def test_only_plain_addresses_other_than_the_loopback_are_read_each_once_in_order():
    # a scope id, text glued to an address and the loopback never reach the front resolver's server= lines
    assert client_upstreams([RESOLV, "nameserver 203.0.113.9\n"], []) == [
        "192.0.2.53",
        "2001:db8::53",
        "198.51.100.1",
        "203.0.113.9",
    ]


def test_nothing_readable_is_an_empty_list_never_an_error():
    assert client_upstreams(["", None, 5, "nameserver 127.0.0.1\n"], None) == []


def test_resolv_nameservers_reads_every_plain_address_in_order_the_loopback_too():
    # what decides whether resolv.conf names resolved's stub alone (then it is left as it is)
    assert resolv_nameservers(RESOLV) == [
        "127.0.0.53",
        "192.0.2.53",
        "::1",
        "2001:db8::53",
        "192.0.2.53",
        "198.51.100.1",
    ]
    assert resolv_nameservers("# resolved's stub file\nnameserver 127.0.0.53\noptions edns0 trust-ad\n") == [
        "127.0.0.53"
    ]
    assert resolv_nameservers(None) == resolv_nameservers("") == []


def test_key_args_give_every_tunnel_in_order_with_an_empty_key_where_none_is_given():
    secrets = {"wg1": {"private_key": None}, "wg0": {"private_key": "k" * 43 + "="}}
    assert client_key_args(secrets) == [
        {"name": "wg1", "private_key": ""},
        {"name": "wg0", "private_key": "k" * 43 + "="},
    ]
