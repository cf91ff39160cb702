"""_lists.read_list: a published list's lines into domains and networks; what is not one is an invalid line,
counted with its number and reason and never taken."""

from __future__ import annotations

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils._lists import read_list


def test_every_format_gives_its_domains_each_once_in_order():
    text = """# a list
example.com
Sub.Example.NET.   # a trailing comment
server=/a.example/b.example/10.0.0.1#53
nftset=/c.example/4#inet#t#s,6#inet#t#s6
ipset=/d.example/set
address=/e.example/0.0.0.0
0.0.0.0 ads.example tracker.example localhost
::1 ip6-localhost
127.0.0.1 localhost.localdomain
example.com
bücher.example
"""
    content = read_list(text)
    assert content.domains == [
        "example.com",
        "sub.example.net",
        "a.example",
        "b.example",
        "c.example",
        "d.example",
        "e.example",
        "ads.example",
        "tracker.example",
        "xn--bcher-kva.example",
    ]
    assert content.invalid == [] and content.lines == 11
    assert content.networks4 == content.networks6 == []


def test_networks_and_addresses_are_static_networks():
    content = read_list("203.0.113.0/24\n2001:db8::1\n198.51.100.7\n2001:db8:5::/48 # v6\n203.0.113.0/24\n")
    assert content.networks4 == ["203.0.113.0/24", "198.51.100.7/32"]
    assert content.networks6 == ["2001:db8::1/128", "2001:db8:5::/48"]
    assert content.domains == [] and content.invalid == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("bad#name.example", "'#'"),
        ("evil.example/x", "'/'"),
        ("a,b.example", "','"),
        ("two words", "one domain or network per line"),
        ("nul\x00.example", "NUL"),
        ("server=/#/1.1.1.1", "every domain"),
        ("server=/a.example,evil/10.0.0.1", "','"),
        ("nftset=/a.example//4#inet#t#s", "empty domain"),
        ("server=/x.example", "needs /domain/"),
        ("0.0.0.0 ok.example bad/name", "'/'"),
        ("10.0.0.1/8", "host bits"),
        ("*.wild.example", "wildcards are not supported"),
        ("server=1.2.3.4", "'='"),
        ("1.2.3.4.5", None),
    ],
)
def test_a_line_that_is_not_an_entry_is_invalid_and_takes_nothing(line, reason):
    content = read_list("first.example\n" + line + "\nlast.example\n")
    assert [number for number, _reason in content.invalid] == [2], content.invalid
    if reason:
        assert reason in content.invalid[0][1], content.invalid
    # nothing of the invalid line is taken, not even its valid names
    assert content.domains == ["first.example", "last.example"]
    assert content.networks4 == content.networks6 == []


def test_blank_lines_and_comments_are_not_lines_and_no_text_is_invalid():
    content = read_list("\n   \n# only comments\n  # indented\n")
    assert content.lines == 0 and content.domains == [] and content.invalid == []
    assert read_list(None).invalid == [(0, "not text")]
    assert read_list("a.example\r\nb.example\r\n").domains == ["a.example", "b.example"]
