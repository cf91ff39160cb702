# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""What differs between the Debian releases the collection supports, and how each difference is met,
in one place: a module that meets one takes its answer from here.

The collection takes one path that works on every supported release rather than branching on a
version, so each entry says what differs (measured), and what the collection does on all of them.
Every entry is checked against real systems: this machine's (tests/unit/.../test_releases.py, Debian
12) and the lab's hosts on Debian 13 and 12 (the client scenarios' test_the_release_facts_hold,
which runs on both). Nothing here imports ansible.
"""

from __future__ import annotations

# The releases, the versions the collection meets there (measured in the lab's images), and which of
# NFT_JSON_DROPS nftables' JSON input keeps there.
RELEASES = {
    "bookworm": {
        "debian": 12,
        "nftables": "1.0.6",
        "dnsmasq": "2.90",
        "pyroute2": "0.7.2",
        "systemd": 252,
        "nft_json_keeps": (),
    },
    "trixie": {
        "debian": 13,
        "nftables": "1.1.3",
        "dnsmasq": "2.91",
        "pyroute2": "0.7.7",
        "systemd": 257,
        "nft_json_keeps": ("auto-merge",),
    },
}

# nftables: the JSON parser drops a set's `comment` (1.0.6 and 1.1.3) and its `auto-merge` flag (1.0.6;
# 1.1.3 keeps it), measured. A transaction that adds a set with either goes in nft's own syntax, on
# every release.
NFT_JSON_DROPS = ("comment", "auto-merge")

# dnsmasq: `--test` parses the lines of a conf-file but not those of a servers-file (2.90 and 2.91):
# a servers-file is checked as a conf-file too, where its server= lines mean the same.
DNSMASQ_TEST_READS_SERVERS_FILE = False

# pyroute2: Debian ships 0.7 (0.7.2, 0.7.7); the keyword helpers of IPRoute.rule() and route() differ
# between 0.7 and 0.9 (PyPI, an execution environment); messages are built with the netlink classes
# and sent with nlm_request, which behave the same on all of them.
PYROUTE2_MIN_VERSION = (0, 7, 2)

# systemd-resolved: 252 has no reload ("Job type reload is not applicable"), 257 has; a changed
# drop-in restarts it.
RESOLVED_APPLY = "restarted"

# systemd-networkd: on a restart 257 removes the routing policy rules and routes it did not make; 252
# kept the rules (measured). The client's drop-in goes on both.
NETWORKD_DROPS_FOREIGN_RULES_SINCE = 257

# systemd unit options: the roles' units use only options both 252 and 257 know (`systemd-analyze
# verify` on both in the lab).


def dnsmasq_test_argv(binary, path, servers_file=False):
    """`dnsmasq --test` for the file at PATH; SERVERS_FILE: PATH is a servers-file (see
    DNSMASQ_TEST_READS_SERVERS_FILE)."""
    argv = [binary, "--test", "--conf-file=%s" % path]
    if servers_file:
        argv.append("--servers-file=%s" % path)
    return argv


def nft_json_drops(set_spec):
    """Whether nftables' JSON input would lose part of SET_SPEC (a set's options: comment, auto_merge)."""
    return bool(set_spec.get("auto_merge") or set_spec.get("comment") is not None)
