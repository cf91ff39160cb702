# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Compile domain groups into dnsmasq ``nftset=`` / ``server=`` configuration (module dnsmasq_nftset).

Pure part (no I/O): normalize_domain(), normalize_server(), set_spec(), compile_config(),
parse_domains(). Stateful part: DnsmasqNftset, which reads the current file (have),
compiles the request (want), computes the operations and applies them in one place.

dnsmasq 2.90 facts this code relies on (measured on Debian 12, see docs of the module):
- nftset=/example.com/ matches example.com and every subdomain; there is no
  subdomains-only form for nftset, so ``*.example.com`` cannot be expressed
  (nftset=/*.example.com/ passes --test but matches nothing).
- Two lines for one domain (4# on one, 6# on the other): only the first is used,
  so every domain gets exactly one nftset= line that carries all its sets.
- Configuration lines longer than 1024 characters are split by dnsmasq's reader.
- ``dnsmasq --test`` does not read --servers-file, so a servers-file is also
  checked as a conf-file (server= lines mean the same in both).
"""

from __future__ import annotations

import encodings.idna
import grp
import json
import os
import pwd
import re
import stat
import tempfile
import traceback
import unicodedata

from ansible_collections.splitroute.vpn.plugins.module_utils._netns import enter_netns
from ansible_collections.splitroute.vpn.plugins.module_utils._releases import dnsmasq_test_argv
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    Errors,
    check_netns_name,
    check_nft_name,
    parse_address,
)

try:
    import nftables

    HAS_NFTABLES = True
    NFTABLES_IMPORT_ERROR = None
except ImportError:  # the nft binary in JSON mode is used instead
    nftables = None
    HAS_NFTABLES = False
    NFTABLES_IMPORT_ERROR = traceback.format_exc()

FLAT = "flat"
FRONT = "front"
BACK = "back"
LAYOUTS = (FLAT, FRONT, BACK)
FAMILIES = ("inet", "ip", "ip6")

# dnsmasq reads configuration lines into a 1025-byte buffer: 1024 characters is the
# longest line that still parses (measured with 2.90); stay one below it.
MAX_LINE = 1023
MAX_NAME = 253
MAX_ERRORS = 20
HEADER = "# Managed by splitroute.vpn.dnsmasq_nftset (layout %s). Do not edit: changes are overwritten."

_SIMPLE = re.compile(r"[A-Za-z0-9_.-]+\Z")
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_NAME = re.compile(r"%s(?:\.%s)*\Z" % (_LABEL, _LABEL))
_ANY_CASE_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
# The common case in one match: ASCII labels, at most one leading and one trailing dot.
_FAST = re.compile(r"\.?(%s(?:\.%s)*)\.?\Z" % (_ANY_CASE_LABEL, _ANY_CASE_LABEL))
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")
_IDNA_DOTS = re.compile("[\u3002\uff0e\uff61]")
_SERVER = re.compile(r"[0-9A-Fa-f.:]+(?:#[0-9]{1,5})?\Z")
_GROUP_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
_NFT_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,254}\Z")

# Characters IDNA 2003 (Python's codec) and IDNA 2008 treat differently: refuse to guess.
_DEVIATIONS = {
    "\u00df": "sharp s (U+00DF)",
    "\u03c2": "final sigma (U+03C2)",
    "\u200c": "zero width non-joiner (U+200C)",
    "\u200d": "zero width joiner (U+200D)",
}
_NAMED = {
    "\n": "a newline",
    "\r": "a carriage return",
    "\t": "a tab",
    " ": "a space",
    "\x00": "a NUL byte",
    "/": "'/' (dnsmasq's domain separator)",
    "#": "'#' (dnsmasq's catch-all and port marker)",
    ",": "',' (dnsmasq's list separator)",
}


class InputError(ValueError):
    """Invalid module input; the message is meant for the user."""


def _show(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _describe_char(ch):
    """Why CH may not appear in a domain name, or None if IDNA may still map it to something valid."""
    if ch in _NAMED:
        return _NAMED[ch]
    if ch.isspace():
        return "whitespace (U+%04X)" % ord(ch)
    category = unicodedata.category(ch)
    if category[0] == "C" or category in ("Zl", "Zp", "Zs"):
        return "a non-printable character (U+%04X)" % ord(ch)
    if ord(ch) < 128 and ch not in "*" and ch.lower() not in _NAME_CHARS:
        return "%r" % ch
    return None


def _wildcard_message(raw):
    hint = ""
    rest = raw.lstrip("*.")
    if rest and "*" not in rest:
        hint = "; write %r instead" % rest
    return (
        "%s: wildcards are not supported: dnsmasq's nftset=/example.com/ already matches example.com and every "
        "subdomain, and nftset has no subdomains-only form%s" % (_show(raw), hint)
    )


def _to_ascii(raw):
    """IDNA (Python's stdlib codec, IDNA 2003) label by label; ASCII labels are only lowercased."""
    labels = _IDNA_DOTS.sub(".", raw).split(".")
    out = []
    for label in labels:
        if label.isascii():
            out.append(label.lower())
            continue
        try:
            out.append(encodings.idna.ToASCII(label).decode("ascii"))
        except UnicodeError as exc:
            raise InputError(
                "%s is not a valid internationalised domain name (label %s: %s)" % (_show(raw), _show(label), exc)
            ) from None
    return ".".join(out)


def _explain(raw, name):
    """Say what is wrong with NAME (the ASCII form of RAW) that _NAME refused."""
    mapped = "" if name == raw else " (its IDNA form is %s)" % _show(name)
    for ch in name:
        if ch not in _NAME_CHARS:
            what = _describe_char(ch) or "%r" % ch
            return "%s%s contains %s" % (_show(raw), mapped, what)
    for label in name.split("."):
        if not label:
            return "%s has an empty label (two dots in a row)" % _show(raw)
        if len(label) > 63:
            return "%s has a label longer than 63 characters (%s)" % (_show(raw), _show(label))
        if label[0] == "-" or label[-1] == "-":
            return "%s has a label that starts or ends with '-' (%s)" % (_show(raw), _show(label))
    return "%s is not a valid domain name" % _show(raw)


def _check_alabel(raw, label):
    """An xn-- label must decode, contain no control characters and be what IDNA makes of its decoded form."""
    encoded = label[4:].encode("ascii")
    try:
        decoded = encoded.decode("punycode")
    except (UnicodeError, ValueError):
        decoded = ""
    valid = (
        decoded
        and not decoded.isascii()
        and decoded.encode("punycode") == encoded
        and all(_describe_char(ch) is None for ch in decoded)
    )
    if valid and not any(ch in decoded for ch in _DEVIATIONS):  # IDNA 2008 spellings of those are kept as given
        try:
            valid = encodings.idna.ToASCII(decoded).decode("ascii") == label
        except UnicodeError:
            valid = False
    if not valid:
        raise InputError("%s has an invalid punycode label %s" % (_show(raw), _show(label)))


def normalize_domain(raw):
    """Return the canonical ASCII form of RAW (lowercase, punycode, no trailing dot) or raise InputError.

    Accepted: ``Example.COM``, ``example.com.`` (trailing dot), ``.example.com`` (dnsmasq's historical
    spelling of example.com), Unicode names (IDNA), ``xn--`` labels, underscores (``_dmarc.example.com``).
    Refused: wildcards, anything that could end or split a dnsmasq line or option, IP addresses.
    """
    match = _FAST.match(raw) if isinstance(raw, str) else None
    if match is not None:
        name = match.group(1).lower()
        if len(name) <= MAX_NAME and not name.rpartition(".")[2].isdigit() and "xn--" not in name:
            return name
    return _normalize_slowly(raw)


def _normalize_slowly(raw):
    """normalize_domain() for everything but plain ASCII names; explains every refusal."""
    if not isinstance(raw, str):
        raise InputError("%s is not a string" % _show(raw))
    if _SIMPLE.match(raw):
        name = raw.lower()
    else:
        for ch in raw:
            if ch == "*":
                raise InputError(_wildcard_message(raw))
            what = _describe_char(ch)
            if what is not None:
                raise InputError("%s contains %s" % (_show(raw), what))
        for ch, what in _DEVIATIONS.items():
            if ch in raw:
                raise InputError(
                    "%s contains the %s, which IDNA 2003 and IDNA 2008 encode differently: "
                    "give the xn-- form you mean" % (_show(raw), what)
                )
        name = _to_ascii(raw)
    if name.endswith("."):
        name = name[:-1]
    if name.startswith("."):
        name = name[1:]
    if not name:
        raise InputError("%s is empty" % _show(raw))
    if len(name) > MAX_NAME:
        raise InputError("%s is %d characters long; a domain name has at most %d" % (_show(raw), len(name), MAX_NAME))
    if not _NAME.match(name):
        raise InputError(_explain(raw, name))
    if name.rpartition(".")[2].isdigit():
        raise InputError("%s looks like an IP address; nftset matches names, not addresses" % _show(raw))
    if "xn--" in name:
        for label in name.split("."):
            if label.startswith("xn--"):
                _check_alabel(raw, label)
    return name


def normalize_server(raw):
    """Return ``ADDRESS`` or ``ADDRESS#PORT`` in canonical form (port 53 is left out) or raise InputError."""
    if not isinstance(raw, str) or not _SERVER.match(raw):
        raise InputError(
            "server %s must be ADDRESS or ADDRESS#PORT: an IPv4 or IPv6 address and an optional port "
            "1-65535 (no names, interfaces, scopes or source addresses)" % _show(raw)
        )
    address, _sep, port = raw.partition("#")
    ip, error = parse_address(address, what="address")  # the collection's one parser: no scope ids
    if error:
        raise InputError("server %s: %s" % (_show(raw), error))
    if ip.is_unspecified or ip.is_multicast:
        raise InputError("server %s: %s is not usable as a DNS server address" % (_show(raw), ip))
    number = int(port) if port else 53
    if not 1 <= number <= 65535:
        raise InputError("server %s: port %s is not in 1-65535" % (_show(raw), port))
    # Python 3.13 changed how str() writes IPv4-mapped IPv6 addresses: spell them out the same everywhere.
    text = "::ffff:%s" % ip.ipv4_mapped if getattr(ip, "ipv4_mapped", None) else str(ip)
    return text if number == 53 else "%s#%d" % (text, number)


def _check_ident(value, what):
    # The shared check_nft_name uses `$`, which also accepts a trailing newline: add a strict match.
    err = check_nft_name(value, what)
    if err is None and not _NFT_IDENT.match(value):
        err = "%s %s is invalid: at most 255 characters, a letter, then letters, digits, _ . -" % (what, _show(value))
    return err


def set_spec(spec):
    """Return ``4#inet#table#set`` for one entry of a group's ``sets`` or raise InputError."""
    if not isinstance(spec, dict):
        raise InputError("%s is not a dictionary" % _show(spec))
    version = spec.get("version")
    if version not in (4, 6) or isinstance(version, bool):
        raise InputError("version %s must be 4 or 6" % _show(version))
    family = spec.get("family") or "inet"
    if family not in FAMILIES:
        raise InputError("family %s must be one of %s" % (_show(family), ", ".join(FAMILIES)))
    for key in ("table", "name"):
        err = _check_ident(spec.get(key), "nftables %s name" % ("set" if key == "name" else key))
        if err:
            raise InputError(err)
    return "%d#%s#%s#%s" % (version, family, spec["table"], spec["name"])


def _unique(items):
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


class Group:
    __slots__ = ("back_server", "domain_set", "domains", "name", "servers", "sets", "specs")

    def __init__(self, name, domains, *, sets, specs, servers, back_server):
        self.name = name
        self.domain_set = domains  # canonical
        self.domains = sorted(domains)
        self.sets = sets  # [(version, family, table, name)], unique, input order
        self.specs = specs  # ["4#inet#t#s", ...] matching self.sets
        self.servers = servers  # canonical, unique, input order
        self.back_server = back_server


class Compiled:
    __slots__ = ("content", "domains", "groups")

    def __init__(self, content, domains, groups):
        self.content = content
        self.domains = domains  # set of canonical domains that have a line in the file
        self.groups = groups


def prepare_groups(groups, layout):
    """Validate and normalise GROUPS for LAYOUT. Returns [Group] sorted by name; raises InputError."""
    if layout not in LAYOUTS:
        raise InputError("layout %s must be one of %s" % (_show(layout), ", ".join(LAYOUTS)))
    errors = Errors(InputError, MAX_ERRORS)
    out = []
    seen = set()
    names = set()
    for index, group in enumerate(groups or []):
        if not isinstance(group, dict):
            errors.add("groups[%d] is not a dictionary" % index)
            continue
        gname = group.get("name")
        if not isinstance(gname, str) or not _GROUP_NAME.match(gname):
            errors.add("groups[%d].name %s must be 1-64 characters from A-Z a-z 0-9 _ . -" % (index, _show(gname)))
            continue
        where = "group %s" % gname
        if gname in names:
            errors.add("%s is defined twice" % where)
            continue
        names.add(gname)
        raw_domains = group.get("domains") or []
        try:
            domains = {normalize_domain(raw) for raw in raw_domains}
        except InputError:
            domains = set()
            for raw in raw_domains:
                try:
                    domains.add(normalize_domain(raw))
                except InputError as exc:
                    errors.add("%s: domain %s" % (where, exc))
        sets, specs = [], []
        for spec in group.get("sets") or []:
            try:
                text = set_spec(spec)
            except InputError as exc:
                errors.add("%s: sets: %s" % (where, exc))
                continue
            key = (spec["version"], spec.get("family") or "inet", spec["table"], spec["name"])
            if key not in sets:
                sets.append(key)
                specs.append(text)
        servers = []
        for raw in group.get("servers") or []:
            try:
                servers.append(normalize_server(raw))
            except InputError as exc:
                errors.add("%s: %s" % (where, exc))
        back_server = group.get("back_server")
        if back_server is not None:
            try:
                back_server = normalize_server(back_server)
            except InputError as exc:
                errors.add("%s: back_server: %s" % (where, str(exc).replace("server ", "", 1)))
        if layout == FLAT and domains and not specs and not servers:
            errors.add("%s has domains but neither sets nor servers: nothing to write for layout flat" % where)
        if layout == FRONT and back_server is None:
            errors.add("%s needs back_server for layout front (the address of its back resolver)" % where)
        if layout == BACK and not specs:
            errors.add("%s needs sets for layout back (the catch-all nftset line feeds them)" % where)
        for domain in sorted(domains & seen):
            other = next(g.name for g in out if domain in g.domain_set)
            errors.add(
                "domain %r is in groups %s and %s: a domain may belong to one group only "
                "(dnsmasq uses a single nftset= line per name)" % (domain, other, gname)
            )
        seen |= domains
        out.append(Group(gname, domains, sets=sets, specs=specs, servers=_unique(servers), back_server=back_server))
    if layout == BACK and len(groups or []) != 1:
        errors.add("layout back takes exactly one group (one back resolver per tunnel), got %d" % len(groups or []))
    errors.raise_if_any()
    out.sort(key=lambda g: g.name)
    return out


def render(groups, layout):
    """Return the file's text for prepared GROUPS (from prepare_groups)."""
    lines = [HEADER % layout]
    if layout == BACK:
        group = groups[0]
        lines.append("# group %s: catch-all, every forwarded reply feeds its sets" % group.name)
        lines.append("nftset=/#/%s" % ",".join(group.specs))
        lines.extend("server=%s" % server for server in group.servers)
        return "\n".join(lines) + "\n"
    for group in groups:
        lines.append(
            "# group %s (%d domain%s)" % (group.name, len(group.domains), "" if len(group.domains) == 1 else "s")
        )
        if layout == FRONT:
            tail = "/%s" % group.back_server
            lines.extend("server=/%s%s" % (domain, tail) for domain in group.domains)
            continue
        spec = "/%s" % ",".join(group.specs) if group.specs else None
        server_tails = ["/%s" % server for server in group.servers]
        if not server_tails:
            lines.extend("nftset=/%s%s" % (domain, spec) for domain in group.domains)
        elif spec is None:
            lines.extend("server=/%s%s" % (domain, tail) for domain in group.domains for tail in server_tails)
        else:
            for domain in group.domains:
                lines.append("nftset=/%s%s" % (domain, spec))
                lines.extend("server=/%s%s" % (domain, tail) for tail in server_tails)
    return "\n".join(lines) + "\n"


def long_lines(text, limit=MAX_LINE):
    """[(line number, length, start of line)] for lines longer than LIMIT."""
    out = []
    lines = text.split("\n")
    if max(map(len, lines)) <= limit:
        return out
    for number, line in enumerate(lines, 1):
        if len(line) > limit:
            out.append((number, len(line), line[:80]))
    return out


def servers_file_problems(text):
    """Line numbers of lines a dnsmasq servers-file must not hold (only server= lines and comments)."""
    return [
        number
        for number, line in enumerate(text.splitlines(), 1)
        if line and not line.startswith("#") and not line.startswith("server=/")
    ]


def compile_config(groups, layout=FLAT):
    """Validate GROUPS and render them for LAYOUT. Returns Compiled; raises InputError."""
    prepared = prepare_groups(groups, layout)
    content = render(prepared, layout)
    too_long = long_lines(content)
    if too_long:
        errors = Errors(InputError, MAX_ERRORS)
        for number, length, start in too_long:
            errors.add(
                "line %d would be %d characters, dnsmasq reads at most %d (%s...): "
                "use shorter table or set names or fewer sets" % (number, length, MAX_LINE, start)
            )
        errors.raise_if_any()
    domains = set()
    if layout != BACK:
        for group in prepared:
            domains |= group.domain_set
    return Compiled(content, domains, prepared)


def server_routes(text):
    """{domain: server} of the server=/DOMAIN/SERVER lines of TEXT (a front layout's: one server a domain)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("server=/"):
            domain, _slash, server = line[8:].partition("/")
            out[domain] = server
    return out


def _suffix_route(routes, domain):
    """The server ROUTES give DOMAIN: its own, else its nearest listed parent's, else None (the default)."""
    name = domain
    while True:
        if name in routes:
            return routes[name]
        _label, dot, name = name.partition(".")
        if not dot:
            return None


def front_overrides(base, want):
    """The servers-file lines that make a front which read BASE ({domain: server}, a conf-file) route as
    WANT does, and the work dnsmasq does to read them on a SIGHUP; None when no such lines exist.

    dnsmasq (2.90, 2.91) keeps every server= line in one list: on a SIGHUP each server=/D/S line of the
    servers-file looks for itself along the whole list (conf-file lines included), so reading a servers-file
    of n such lines costs about n x (len(BASE) + n) and a 100,000-line one takes minutes; server=/D/# lines
    (D: the standard servers) are kept elsewhere and cost nothing, and they win over a conf-file's
    server=/D/S. So: a domain of BASE that WANT routes elsewhere by default (itself or through its
    parent) gets server=/D/#, a domain only WANT has gets server=/D/S; a domain of BASE that WANT sends to
    another back resolver cannot be expressed (both servers would answer for it): None."""
    lines = []
    for domain, server in base.items():
        route = _suffix_route(want, domain)
        if route == server:
            continue
        if route is not None:
            return None
        lines.append("server=/%s/#" % domain)
    added = ["server=/%s/%s" % (domain, server) for domain, server in want.items() if domain not in base]
    return lines + added, len(added) * (len(base) + len(added))


def parse_domains(text):
    """Domains named by the nftset=/.../ and server=/.../ lines of TEXT (the catch-all '#' excluded)."""
    found = set()
    for line in text.splitlines():
        if line.startswith(("nftset=/", "server=/")):
            parts = line.split("/")
            found.update(part for part in parts[1:-1] if part and part != "#")
    return found


def file_args_problems(params, directory, symbolic_mode):
    """What is wrong with the mode, owner and group of PARAMS (AnsibleModule's file arguments), checked
    the way AnsibleModule will apply them, so that a bad value fails before the file is written.
    SYMBOLIC_MODE is AnsibleModule._symbolic_mode_to_octal (the module's own parser of u=rw,g=r)."""
    problems = []
    mode = params.get("mode")
    if mode is not None:
        if isinstance(mode, bool) or not isinstance(mode, (int, str)):
            problems.append(
                "mode must be an octal string such as '0644' or a symbolic mode, not %s" % type(mode).__name__
            )
        else:
            problems.extend(_mode_problems(mode, directory, symbolic_mode))
    for key, lookup, kind in (("owner", pwd.getpwnam, "user"), ("group", grp.getgrnam, "group")):
        value = params.get(key)
        if value is None:
            continue
        try:
            if int(value) >= 0:
                continue
            problems.append("%s %s is not a %s id" % (key, _show(value), kind))
            continue
        except ValueError:
            pass
        try:
            lookup(value)
        except KeyError:
            problems.append("%s %s: no such %s on this host" % (key, _show(value), kind))
    return problems


def _mode_problems(mode, directory, symbolic_mode):
    if isinstance(mode, int):
        number = mode
    else:
        try:
            number = int(mode, 8)
        except ValueError:
            number = None
        if number is None:
            try:
                path_stat = os.stat(directory if os.path.isdir(directory) else "/")
                number = symbolic_mode(path_stat, mode)
            except Exception as exc:  # what AnsibleModule would fail with, after writing
                return ["mode %s must be in octal (0644) or symbolic (u=rw,g=r,o=r) form: %s" % (_show(mode), exc)]
    if number < 0 or number != stat.S_IMODE(number):
        return ["mode %s is invalid: only permission bits (0000-07777) are allowed" % _show(mode)]
    return []


class _SetReader:
    """Look up nftables sets as JSON: libnftables when importable, else ``nft -j -t``."""

    def __init__(self, module):
        self.module = module
        self.nft = None
        if HAS_NFTABLES:
            try:
                self.nft = nftables.Nftables()
                self.nft.set_json_output(True)
                self.nft.set_terse_output(True)
            except (OSError, AttributeError):
                self.nft = None
        self.binary = None if self.nft else module.get_bin_path("nft", opt_dirs=["/usr/sbin", "/sbin"])
        if self.nft is None and self.binary is None:
            module.fail_json(
                msg="check_sets needs the libnftables Python binding (python3-nftables) or the nft binary",
                exception=NFTABLES_IMPORT_ERROR,
            )

    def get(self, family, table, name):
        """Return (set dict or None, error or None)."""
        if self.nft is not None:
            rc, output, error = self.nft.json_cmd(
                {"nftables": [{"list": {"set": {"family": family, "table": table, "name": name}}}]}
            )
        else:
            rc, output, error = self.module.run_command(
                [self.binary, "-j", "-t", "list", "set", family, table, name], environ_update={"LC_ALL": "C"}
            )
            if rc == 0:
                try:
                    output = json.loads(output)
                except ValueError as exc:
                    return None, "nft printed no JSON: %s" % exc
        if rc != 0:
            if "No such file or directory" in (error or ""):
                return None, None
            return None, (error or "").strip() or "rc=%s" % rc
        for item in output.get("nftables", []):
            if "set" in item:
                return item["set"], None
        return None, None


def check_sets(module, groups, netns=None):
    """Fail unless every set of GROUPS exists with the type its 4#/6# side needs."""
    reader = _SetReader(module)
    where = " in network namespace %r" % netns if netns else ""
    errors = Errors(InputError, MAX_ERRORS)
    seen = set()
    for group in groups:
        for version, family, table, name in group.sets:
            if (version, family, table, name) in seen:
                continue
            seen.add((version, family, table, name))
            label = "nftables set %s %s %s (group %s)" % (family, table, name, group.name)
            found, error = reader.get(family, table, name)
            want = "ipv4_addr" if version == 4 else "ipv6_addr"
            if error:
                errors.add("%s: cannot list it%s: %s" % (label, where, error))
            elif found is None:
                errors.add("%s does not exist%s" % (label, where))
            elif found.get("type") != want:
                errors.add(
                    "%s has type %s%s; the %d# side of nftset needs type %s"
                    % (label, json.dumps(found.get("type")), where, version, want)
                )
    if errors.count:
        try:
            errors.raise_if_any()
        except InputError as exc:
            module.fail_json(msg="check_sets: %s" % exc)


class DnsmasqNftset:
    """have / want / ops for one dnsmasq file; _apply() is the only place that writes."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.path = self.params["path"]
        self.state = self.params["state"]
        self.layout = self.params["layout"]

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, path=self.path, **kwargs)

    # ---- want ------------------------------------------------------------------------------
    def want(self):
        problems = []
        netns = self.params.get("netns")
        if netns is not None:  # "" would quietly mean the module's own namespace
            problems.extend(filter(None, [check_netns_name(netns, "netns")]))
        if self.state == "present":
            directory = os.path.dirname(self.path) or "."
            problems.extend(file_args_problems(self.params, directory, self.module._symbolic_mode_to_octal))
        if problems:
            self.fail("invalid input, nothing was changed: %s" % "; ".join(problems))
        if self.state == "absent":
            return None
        try:
            return compile_config(self.params["groups"], self.layout)
        except InputError as exc:
            self.fail("invalid input, nothing was changed: %s" % exc)

    # ---- have ------------------------------------------------------------------------------
    def have(self):
        """Current content of the file as bytes, or None when it does not exist."""
        if os.path.isdir(self.path):
            self.fail("%s is a directory" % self.path)
        if not os.path.exists(self.path):
            return None
        try:
            with open(self.path, "rb") as fh:
                return fh.read()
        except OSError as exc:
            self.fail("cannot read %s: %s" % (self.path, exc))

    def enter_netns(self):
        netns = self.params.get("netns")
        if netns is None:
            return
        err = check_netns_name(netns) or enter_netns(netns)
        if err:
            self.fail(err)

    # ---- validation --------------------------------------------------------------------------
    def dnsmasq_binary(self):
        binary = self.params["dnsmasq_binary"]
        if "/" in binary:
            if not os.access(binary, os.X_OK):
                self.fail("dnsmasq_binary %s is not an executable file" % binary)
            return binary
        found = self.module.get_bin_path(binary, opt_dirs=["/usr/sbin", "/sbin"])
        if not found:
            self.fail("%s not found in PATH, /usr/sbin or /sbin: install dnsmasq (or dnsmasq-base)" % binary)
        return found

    def validate(self, data):
        """Run ``dnsmasq --test`` on DATA from a temporary file that is always removed."""
        binary = self.dnsmasq_binary()
        fd, tmp = tempfile.mkstemp(prefix="dnsmasq_nftset-", suffix=".conf")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            # --test does not read a servers-file (_releases): the file goes as a conf-file too,
            # where server= lines mean the same, so that every line is really parsed.
            cmd = dnsmasq_test_argv(binary, tmp, servers_file=self.layout == FRONT)
            rc, out, err = self.module.run_command(cmd, environ_update={"LC_ALL": "C"})
        finally:
            os.unlink(tmp)
        if rc != 0:
            self.fail(
                "dnsmasq --test rejected the generated configuration, nothing was changed: %s"
                % (err.strip() or out.strip()),
                cmd=cmd,
                rc=rc,
                stdout=out,
                stderr=err,
            )

    # ---- ops and the write point ---------------------------------------------------------------
    def ops(self, before, after):
        if self.state == "absent":
            return [("remove", self.path)] if before is not None else []
        return [("write", self.path)] if before != after else []

    def _write(self, data):
        directory = os.path.dirname(self.path) or "."
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(self.path), suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self.module.atomic_move(tmp, self.path, unsafe_writes=self.params["unsafe_writes"])
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def apply(self, ops, data):
        """The one place that changes the system. Returns whether anything changed (or would)."""
        changed = bool(ops)
        if not self.module.check_mode:
            for op, _path in ops:
                if op == "write":
                    self._write(data)
                elif op == "remove":
                    os.unlink(self.path)
        if self.state == "present":
            # mode/owner/group/attributes: AnsibleModule's setters honour check mode themselves.
            file_args = self.module.load_file_common_arguments(self.params, path=self.path)
            if self.module.set_fs_attributes_if_different(file_args, False):
                ops.append(("set attributes", self.path))
                changed = True
        return changed

    def run(self):
        compiled = self.want()  # input errors end here, before anything is looked at or changed
        if self.state == "present":
            directory = os.path.dirname(self.path) or "."
            if not os.path.isdir(directory) and not self.module.check_mode:
                self.fail("directory %s does not exist" % directory)
        if self.state == "present" and self.params["check_sets"]:
            self.enter_netns()  # the namespace matters only for looking at the sets
        before = self.have()
        before_text = before.decode("utf-8", errors="replace") if before is not None else ""
        after_text = compiled.content if compiled is not None else ""
        after = after_text.encode("utf-8") if compiled is not None else None
        if compiled is not None and self.params["check_sets"] and self.layout != FRONT:
            check_sets(self.module, compiled.groups, self.params.get("netns"))
        ops = self.ops(before, after)
        if ops and ops[0][0] == "write":
            if self.layout == FRONT and servers_file_problems(after_text):
                self.fail("internal error: the front layout produced lines that are not server= lines")
            self.validate(after)
        changed = self.apply(ops, after)
        have_domains = parse_domains(before_text)
        want_domains = compiled.domains if compiled is not None else set()
        result = {
            "changed": changed,
            "path": self.path,
            "layout": self.layout,
            "domain_count": len(want_domains),
            "domains_added": sorted(want_domains - have_domains),
            "domains_removed": sorted(have_domains - want_domains),
            "operations": ["%s %s" % op for op in ops],
        }
        if self.module._diff:
            result["diff"] = {
                "before": before_text,
                "after": after_text,
                "before_header": self.path,
                "after_header": self.path,
            }
        self.module.exit_json(**result)
