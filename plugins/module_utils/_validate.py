# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Validators shared by the collection's modules. Each returns an error string or None."""

from __future__ import annotations

import ipaddress
import re

_IFNAME = re.compile(r"^[A-Za-z0-9_.:+-]{1,15}$")
_NETNS = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NFT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,255}$")
_PROGRAM = re.compile(r"^[A-Za-z0-9_./+-]{1,255}$")


def check_ifname(name, what="interface name"):
    if not isinstance(name, str) or not _IFNAME.fullmatch(name) or name in (".", ".."):
        return "%s %r is invalid: 1-15 characters from A-Z a-z 0-9 _ . : + -" % (what, name)
    return None


def check_netns_name(name, what="network namespace name"):
    if not isinstance(name, str) or not _NETNS.fullmatch(name) or name in (".", ".."):
        return "%s %r is invalid: 1-64 characters from A-Z a-z 0-9 _ . -" % (what, name)
    return None


def check_program(value, what="program"):
    """A program name or path that goes into a unit file or a command line (empty allowed)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _PROGRAM.fullmatch(value):
        return "%s %r is invalid: a program name or path from A-Z a-z 0-9 _ . / + -" % (what, value)
    return None


def check_nft_name(name, what="nftables name"):
    if not isinstance(name, str) or not _NFT_NAME.fullmatch(name):
        return "%s %r is invalid: a letter, then letters, digits, _ . - (nftables identifier)" % (what, name)
    return None


def parse_network(value, version=None, what="network"):
    """Parse an address or CIDR strictly (host bits must be zero). Returns (network, error)."""
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        return None, "%s %r is invalid: %s" % (what, value, exc)
    if version is not None and net.version != version:
        return None, "%s %r is not an IPv%d network" % (what, value, version)
    return net, None


def parse_interface_address(value, what="address"):
    """Parse ADDRESS/PREFIX for an interface (host bits allowed). Returns (interface, error)."""
    try:
        if "/" not in str(value):
            raise ValueError("a prefix length is required, e.g. 10.0.0.1/24")
        iface = ipaddress.ip_interface(str(value))
    except ValueError as exc:
        return None, "%s %r is invalid: %s" % (what, value, exc)
    return iface, None


def parse_address(value, version=None, what="address"):
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError as exc:
        return None, "%s %r is invalid: %s" % (what, value, exc)
    if version is not None and addr.version != version:
        return None, "%s %r is not an IPv%d address" % (what, value, version)
    return addr, None
