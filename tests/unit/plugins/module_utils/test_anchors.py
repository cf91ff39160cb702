"""Every pattern that admits a value into a file, a command or a path ends at the end of
the string: `$` would also match before a trailing newline, and let "name\\n" through."""

from __future__ import annotations

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils import _netns_veth, _nft, _nft_set, _policy_rule


@pytest.mark.parametrize(
    ("pattern", "good"),
    [
        (_netns_veth._RESOLV_WORD, "example.com"),  # resolv.conf search/options words
        (_netns_veth._SYSCTL_COMPONENT, "ip_forward"),  # /proc/sys path components
        (_nft_set._COMMENT_OK, "set of wg0"),  # sent in nft syntax
        (_nft_set._IFNAME, "wg0"),
        (_nft_set._MAC, "aa:bb:cc:dd:ee:ff"),
        (_policy_rule._TABLE_NAME, "vpn"),  # a line of rt_tables
        (_nft._TIME_RE, "1h"),
    ],
)
def test_a_trailing_newline_is_refused(pattern, good):
    assert pattern.match(good)
    assert not pattern.match(good + "\n")
