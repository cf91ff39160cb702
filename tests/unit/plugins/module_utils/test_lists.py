"""_lists.read_list: a published list's lines into domains and networks; what is not one is an invalid line,
counted with its number and reason and never taken."""

from __future__ import annotations

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils import _lists
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


# ---------------------------------------------------------------- bodies of sources, and the merge rule


@pytest.mark.parametrize(
    ("body", "ctype", "reason"),
    [
        (b"", "", "an empty body"),
        (b"  \n\n", "", "an empty body"),
        (b"example.com\n", "text/html", "an HTML page"),
        (b"\n <!DOCTYPE html><html>...", "text/plain", "an HTML page"),
        (b"\xff\xfe bad", "", "not UTF-8"),
        (b"# nothing\n", "", "no domain or network"),
        (b"a.example\nb,c.example\nd/e\nf g h\n", "", "3 invalid lines, more than the 2 allowed (line 2:"),
    ],
)
def test_a_body_that_may_not_replace_the_last_good_copy_says_why(body, ctype, reason):
    _content, why = _lists.read_body(body, ctype, max_invalid=2)
    assert why is not None and why.startswith(reason), why


def test_a_good_body_with_a_few_invalid_lines_is_taken_without_them():
    content, why = _lists.read_body(b"\xef\xbb\xbfa.example\nb,c.example\n10.0.0.0/8\n", "text/plain", max_invalid=1)
    assert why is None and content.domains == ["a.example"] and content.networks4 == ["10.0.0.0/8"]
    assert [n for n, _r in content.invalid] == [2]


def test_the_first_tunnel_takes_a_domain_whatever_its_source():
    def content(*lines):
        return _lists.read_list("\n".join(lines))

    tunnels = [
        {"name": "wg0", "domains": ["static.example"], "sources": [{"id": "s0"}], "has_v4": True, "has_v6": False},
        {"name": "wg1", "domains": ["own.example"], "sources": [{"id": "s1"}, {"id": "gone"}]},
    ]
    contents = {
        "s0": content("shared.example", "10.1.0.0/24", "10.1.1.0/24", "2001:db8::/64"),
        "s1": content("shared.example", "static.example", "own.example", "new.example", "10.1.0.0/16"),
    }
    merged, conflicts = _lists.merge(tunnels, contents)
    assert merged["wg0"] == {
        "domains": ["shared.example", "static.example"],
        "networks4": ["10.1.0.0/23"],  # collapsed
        "networks6": [],  # the tunnel carries no IPv6
    }
    assert merged["wg1"]["domains"] == ["new.example", "own.example"]
    assert merged["wg1"]["networks4"] == ["10.1.0.0/16"]  # networks: the first tunnel's nft rule matches first
    assert sorted(conflicts["s1"]) == [("shared.example", "wg0"), ("static.example", "wg0")]
    assert "gone" not in conflicts  # no good copy: nothing of it


def test_a_source_s_id_is_its_tunnel_and_place():
    assert _lists.source_id("wg0", "https://a/") == _lists.source_id("wg0", "https://a/")
    assert len({_lists.source_id(t, w) for t in ("wg0", "wg1") for w in ("https://a/", "/a")}) == 4
