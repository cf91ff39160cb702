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


# ---------------------------------------------------------------------------
# Addresses: the one parser of the collection. Python's ipaddress accepts an
# IPv6 scope id after "%" (fd00::1%x) and the scope id may hold anything, a
# newline included: every address that reaches a file or a command line goes
# through these functions, which refuse any scope id (and any value that is not
# a string or an ipaddress object, so a list or a number is not str()-ed into
# something that parses).

_ADDRESS_TYPES = (
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
)


def type_name(value):
    """The builtin type VALUE is or derives from: 'int', not Ansible 2.19's '_AnsibleTaggedInt'."""
    for cls in type(value).__mro__:
        if cls.__module__ == "builtins" and cls is not object:
            return cls.__name__
    return type(value).__name__


def _address_text(value, what):
    """The text of an address-like VALUE, or (None, error)."""
    if isinstance(value, _ADDRESS_TYPES):
        if getattr(value, "scope_id", None):
            return None, "%s %r is invalid: a scope id (%%...) is not allowed here" % (what, str(value))
        return str(value), None
    if isinstance(value, bool) or not isinstance(value, str):
        return None, "%s must be a string, not %s" % (what, type_name(value))
    if "%" in value:
        return None, "%s %r is invalid: a scope id (%%...) is not allowed here" % (what, value)
    if not value or value != value.strip() or any(ord(c) < 33 or ord(c) == 127 for c in value):
        return None, "%s %r is invalid: an address has no spaces or control characters" % (what, value)
    return value, None


def _version_error(obj, version, what, value, kind):
    if version is not None and obj.version != version:
        return "%s %r is not an IPv%d %s" % (what, value, version, kind)
    return None


def parse_network(value, version=None, what="network"):
    """Parse an address or CIDR strictly (host bits must be zero). Returns (network, error)."""
    text, error = _address_text(value, what)
    if error:
        return None, error
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        return None, "%s %r is invalid: %s" % (what, value, exc)
    error = _version_error(net, version, what, value, "network")
    return (None, error) if error else (net, None)


def parse_interface(value, version=None, what="address", prefix_required=False):
    """Parse ADDRESS[/PREFIX] for an interface (host bits allowed). Returns (interface, error)."""
    text, error = _address_text(value, what)
    if error:
        return None, error
    try:
        if prefix_required and "/" not in text:
            raise ValueError("a prefix length is required, e.g. 10.0.0.1/24")
        iface = ipaddress.ip_interface(text)
    except ValueError as exc:
        return None, "%s %r is invalid: %s" % (what, value, exc)
    error = _version_error(iface, version, what, value, "address")
    return (None, error) if error else (iface, None)


def parse_interface_address(value, what="address"):
    """Parse ADDRESS/PREFIX for an interface (host bits allowed). Returns (interface, error)."""
    return parse_interface(value, what=what, prefix_required=True)


def parse_address(value, version=None, what="address"):
    """Parse a single address, no prefix, no scope id. Returns (address, error)."""
    text, error = _address_text(value, what)
    if error:
        return None, error
    try:
        addr = ipaddress.ip_address(text)
    except ValueError as exc:
        return None, "%s %r is invalid: %s" % (what, value, exc)
    error = _version_error(addr, version, what, value, "address")
    return (None, error) if error else (addr, None)


_LINK_LOCAL6 = ipaddress.ip_network("fe80::/10")


def parse_next_hop(value, version=None, what="via"):
    """A route's next hop: an address, or a link-local IPv6 address with an interface
    (fe80::1%eth0), the one place where a scope id means something.

    Returns (address, ifname or None, error).
    """
    if isinstance(value, str) and "%" in value:
        head, _sep, scope = value.partition("%")
        addr, error = parse_address(head, version, what)
        if error:
            return None, None, error
        if addr.version != 6 or addr not in _LINK_LOCAL6:
            return (
                None,
                None,
                "%s %r is invalid: only a link-local IPv6 address (fe80::/10) takes %%interface"
                % (
                    what,
                    value,
                ),
            )
        error = check_ifname(scope, "%s interface" % what)
        if error:
            return None, None, error
        return addr, scope, None
    addr, error = parse_address(value, version, what)
    return (addr, None, None) if not error else (None, None, error)


# ---------------------------------------------------------------------------
# Types. Inventory values reach the plans and the modules as YAML gives them, or
# as strings from `-e`. Each helper returns (value, error); the error names WHAT,
# which the caller makes the full path (splitroute_gateway_peers[1].name).


def want_str(value, what, allow_empty=False):
    if isinstance(value, bool) or not isinstance(value, str):
        return None, "%s: must be a string, not %s" % (what, type_name(value))
    if not value and not allow_empty:
        return None, "%s: must not be empty" % what
    return value, None


def want_list(value, what):
    """A list (None is the empty list). A string is refused, never split into characters."""
    if value is None:
        return [], None
    if isinstance(value, (list, tuple)):
        return list(value), None
    return None, "%s: must be a list, not %s%s" % (
        what,
        type_name(value),
        " (write [%r] for a list of one)" % value if isinstance(value, str) else "",
    )


def want_dict(value, what):
    """A dict (None is the empty dict)."""
    if value is None:
        return {}, None
    if isinstance(value, dict):
        return value, None
    return None, "%s: must be a dict, not %s" % (what, type_name(value))


def want_int(value, what, lo=None, hi=None):
    """An integer, or a string of one (as `-e name=5302` gives it); never a bool."""
    if isinstance(value, bool):
        return None, "%s: must be a number, not a boolean" % what
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"(?:0[xX][0-9A-Fa-f]{1,16}|-?[0-9]{1,20})", value.strip()):
        number = int(value.strip(), 0) if value.strip().lower().startswith("0x") else int(value.strip(), 10)
    else:
        return None, "%s: must be a number, not %r" % (what, value)
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        return None, "%s: %d is outside %s-%s" % (what, number, lo, hi)
    return number, None


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def want_bool(value, what):
    """A boolean, or one of Ansible's boolean words as `-e` gives them."""
    if isinstance(value, bool):
        return value, None
    if isinstance(value, int) and value in (0, 1):
        return bool(value), None
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE, None
    return None, "%s: must be true or false, not %r" % (what, value)


# ---------------------------------------------------------------------------
# The kernel's own routing tables and rules: never the collection's to manage.
RESERVED_TABLES = {0: "unspec", 253: "default", 254: "main", 255: "local"}
RESERVED_PRIORITIES = {0: "from all lookup local", 32766: "from all lookup main", 32767: "from all lookup default"}


def check_tables(first, count, what):
    """Tables FIRST .. FIRST+COUNT-1 hold none of the kernel's tables (0, 253-255)."""
    hit = sorted(t for t in RESERVED_TABLES if first <= t < first + count)
    if first < 1 or first + count - 1 > 0xFFFFFFFF:
        return "%s: tables %d-%d are outside 1-4294967295" % (what, first, first + count - 1)
    if hit:
        return "%s: tables %d-%d include the kernel's table %s (%s); choose another range" % (
            what,
            first,
            first + count - 1,
            hit[0],
            RESERVED_TABLES[hit[0]],
        )
    return None


def check_priorities(first, last, what):
    """Rule priorities FIRST..LAST hold none of the kernel's rules (0, 32766, 32767)."""
    if first < 1 or last > 0xFFFFFFFF or last < first:
        return "%s: priorities %d-%d are outside 1-4294967295" % (what, first, last)
    hit = sorted(p for p in RESERVED_PRIORITIES if first <= p <= last)
    if hit:
        return "%s: priorities %d-%d include the kernel's rule %d (%s); choose another range" % (
            what,
            first,
            last,
            hit[0],
            RESERVED_PRIORITIES[hit[0]],
        )
    return None


class Errors:
    """Collects input errors so that every one is reported at once (the first LIMIT in full, then a
    count); raise_if_any() raises EXC with them joined."""

    def __init__(self, exc=ValueError, limit=20):
        self.exc = exc
        self.limit = limit
        self.items = []
        self.count = 0

    def add(self, message):
        self.count += 1
        if len(self.items) < self.limit:
            self.items.append(message)

    def raise_if_any(self):
        if self.count:
            more = "" if self.count <= len(self.items) else " (and %d more)" % (self.count - len(self.items))
            raise self.exc("; ".join(self.items) + more)
