# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""have / want / ops for one nftables set and its elements (module splitroute.vpn.nft_set)."""

from __future__ import annotations

import ipaddress
import json
import re
import socket

from ansible_collections.splitroute.vpn.plugins.module_utils._netns import enter_netns, netns_exists
from ansible_collections.splitroute.vpn.plugins.module_utils._nft import (
    Nft,
    NftError,
    make_backend,
    parse_duration,
)
from ansible_collections.splitroute.vpn.plugins.module_utils._releases import nft_json_drops
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import check_netns_name, check_nft_name

ELEMENT_TYPES = ("ipv4_addr", "ipv6_addr", "ether_addr", "inet_service", "inet_proto", "mark", "ifname")
FLAGS = ("interval", "timeout", "constant", "dynamic")
ELEMENT_STATES = ("merged", "replaced", "overridden", "deleted")
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}\Z")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:+*-]{1,16}\Z")
_COMMENT_OK = re.compile(r"^[^\x00-\x1f\x7f\"\\]{0,128}\Z")
_PROTO_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]{0,63}\Z")
_LIMITS = {"inet_service": 65535, "inet_proto": 255, "mark": 0xFFFFFFFF}
_AF = {"ipv4_addr": (socket.AF_INET, 32), "ipv6_addr": (socket.AF_INET6, 128)}


class ElementError(ValueError):
    pass


# --------------------------------------------------------------------------- element codecs
#
# A "key" is the canonical, hashable form of one element (or of one component of a
# concatenation). Address components of interval sets are integer intervals (lo, hi);
# everything else is a string or an int, exactly as nft prints it in JSON.


def _addr_to_int(family, text):
    return int.from_bytes(socket.inet_pton(family, text), "big")


def _int_to_addr(family, bits, value):
    return socket.inet_ntop(family, value.to_bytes(bits // 8, "big"))


class AddrCodec:
    def __init__(self, kind, interval):
        self.kind = kind
        self.family, self.bits = _AF[kind]
        self.interval = interval

    def parse(self, text):
        if not self.interval:  # the common case, kept short: 100,000 elements go through here
            try:
                return socket.inet_ntop(self.family, socket.inet_pton(self.family, text.strip()))
            except (OSError, ValueError):
                pass
        text = str(text).strip()
        try:
            if "/" in text:
                if not self.interval:
                    raise ElementError("a prefix needs a set with the interval flag")
                net = ipaddress.ip_network(text, strict=True)
                if net.max_prefixlen != self.bits:
                    raise ValueError("wrong address family")
                return (int(net.network_address), int(net.broadcast_address))
            if "-" in text:
                if not self.interval:
                    raise ElementError("a range needs a set with the interval flag")
                lo_text, hi_text = (p.strip() for p in text.split("-", 1))
                lo, hi = _addr_to_int(self.family, lo_text), _addr_to_int(self.family, hi_text)
                if lo > hi:
                    raise ElementError("range start is above its end")
                return (lo, hi)
            value = _addr_to_int(self.family, text)
        except (OSError, ValueError) as exc:
            if isinstance(exc, ElementError):
                raise
            raise ElementError(
                "not an %s address%s" % (self.kind.split("_")[0].upper(), " or prefix" if self.interval else "")
            ) from exc
        return (value, value) if self.interval else self.canon(value)

    def canon(self, value):
        return _int_to_addr(self.family, self.bits, value)

    def from_json(self, val):
        if self.interval:
            if isinstance(val, dict) and "prefix" in val:
                lo = _addr_to_int(self.family, val["prefix"]["addr"])
                size = 1 << (self.bits - int(val["prefix"]["len"]))
                return (lo, lo + size - 1)
            if isinstance(val, dict) and "range" in val:
                return (_addr_to_int(self.family, val["range"][0]), _addr_to_int(self.family, val["range"][1]))
            value = _addr_to_int(self.family, val)
            return (value, value)
        if self.family == socket.AF_INET6 and "." in val:  # ::ffff:1.2.3.4 as inet_ntop prints it
            return self.canon(_addr_to_int(self.family, val))
        return val

    def to_json(self, key):
        if not self.interval:
            return key
        lo, hi = key
        if lo == hi:
            return self.canon(lo)
        size = hi - lo + 1
        if size & (size - 1) == 0 and lo % size == 0:
            return {"prefix": {"addr": self.canon(lo), "len": self.bits - size.bit_length() + 1}}
        return {"range": [self.canon(lo), self.canon(hi)]}

    def to_text(self, key):
        js = self.to_json(key)
        if isinstance(js, dict) and "prefix" in js:
            return "%s/%d" % (js["prefix"]["addr"], js["prefix"]["len"])
        if isinstance(js, dict):
            return "%s-%s" % tuple(js["range"])
        return js


def _proto_number(name):
    """The number of protocol NAME as /etc/protocols gives it (nft reads and prints names the same way)."""
    try:
        return socket.getprotobyname(name)
    except OSError:
        return None


class ScalarCodec:
    """inet_service, inet_proto, mark (integers) and ether_addr, ifname (strings).

    nft prints an inet_proto element by its name from /etc/protocols (``"tcp"``,
    ``"ipv6-icmp"``) where there is one and as a number otherwise, and reads
    either: the key is always the number, so ``tcp`` and ``6`` are one element.
    """

    LIMITS = _LIMITS

    def __init__(self, kind, interval):
        self.kind = kind
        self.interval = interval and kind in self.LIMITS

    def _number(self, text):
        try:
            value = int(text, 0)
        except ValueError:
            value = _proto_number(text.lower()) if self.kind == "inet_proto" and _PROTO_NAME.match(text) else None
            if value is None:
                if self.kind == "inet_proto":
                    raise ElementError("not a protocol number in 0-255 or a name from /etc/protocols") from None
                raise ElementError("not a number in 0-%d" % self.LIMITS[self.kind]) from None
        if not 0 <= value <= self.LIMITS[self.kind]:
            raise ElementError("not a number in 0-%d" % self.LIMITS[self.kind])
        return value

    def _one(self, text):
        text = str(text).strip()
        if self.kind == "ether_addr":
            low = text.lower().replace("-", ":")
            if not _MAC.match(low):
                raise ElementError("not a MAC address (aa:bb:cc:dd:ee:ff)")
            return low
        if self.kind == "ifname":
            if not _IFNAME.match(text):
                raise ElementError("not an interface name")
            return text
        return self._number(text)

    def parse(self, text):
        text = str(text).strip()
        if self.kind in self.LIMITS and "-" in text.lstrip("-"):
            if self.kind == "inet_proto" and _proto_number(text.lower()) is not None:
                return self._one(text)  # a name with a dash (ipv6-icmp), not a range
            if not self.interval:
                raise ElementError("a range needs a set with the interval flag")
            lo, hi = (self._one(p) for p in text.split("-", 1))
            if lo > hi:
                raise ElementError("range start is above its end")
            return (lo, hi) if lo != hi else lo
        return self._one(text)

    def _from_json_one(self, val):
        if self.kind not in self.LIMITS:
            return val
        if isinstance(val, int) and not isinstance(val, bool):
            return val
        if isinstance(val, str):
            return self._number(val)
        raise ElementError("unexpected value %r" % (val,))

    def from_json(self, val):
        if isinstance(val, dict) and "range" in val:
            lo, hi = val["range"]
            return (self._from_json_one(lo), self._from_json_one(hi))
        return self._from_json_one(val)

    def to_json(self, key):
        return {"range": list(key)} if isinstance(key, tuple) else key

    def to_text(self, key):
        return "%s-%s" % key if isinstance(key, tuple) else str(key)


class ConcatCodec:
    def __init__(self, kinds, interval):
        self.parts = [make_codec(k, interval, concat=True) for k in kinds]

    def parse(self, text):
        pieces = [p.strip() for p in re.split(r"\s+\.\s+", str(text).strip())]
        if len(pieces) != len(self.parts):
            raise ElementError("expected %d components separated by ' . '" % len(self.parts))
        return tuple(part.parse(piece) for part, piece in zip(self.parts, pieces))

    def from_json(self, val):
        return tuple(part.from_json(v) for part, v in zip(self.parts, val["concat"]))

    def to_json(self, key):
        return {"concat": [part.to_json(k) for part, k in zip(self.parts, key)]}

    def to_text(self, key):
        return " . ".join(str(part.to_text(k)) for part, k in zip(self.parts, key))


def make_codec(kind, interval, concat=False):
    if isinstance(kind, (list, tuple)):
        return ConcatCodec(kind, interval)
    if kind in _AF:
        codec = AddrCodec(kind, interval)
        if concat and interval:
            # In concatenations nft keeps each component's own form: compare them exactly.
            codec.interval = False
            codec.concat_interval = True
            return _ConcatAddr(codec)
        return codec
    return ScalarCodec(kind, interval)


class _ConcatAddr:
    """An address component of an interval concatenation: an address, prefix or range kept verbatim."""

    def __init__(self, codec):
        self.codec = codec

    def parse(self, text):
        text = str(text).strip()
        try:
            if "/" in text:
                net = ipaddress.ip_network(text, strict=True)
                if net.max_prefixlen != self.codec.bits:
                    raise ValueError("family")
                return ("prefix", str(net.network_address), net.prefixlen)
            if "-" in text:
                lo, hi = (self.codec.canon(_addr_to_int(self.codec.family, p.strip())) for p in text.split("-", 1))
                return ("range", lo, hi)
            return self.codec.canon(_addr_to_int(self.codec.family, text))
        except (OSError, ValueError) as exc:
            raise ElementError("not an %s address, prefix or range" % self.codec.kind.split("_")[0].upper()) from exc

    def from_json(self, val):
        if isinstance(val, dict) and "prefix" in val:
            return ("prefix", val["prefix"]["addr"], int(val["prefix"]["len"]))
        if isinstance(val, dict) and "range" in val:
            return ("range", val["range"][0], val["range"][1])
        return self.codec.from_json(val)

    def to_json(self, key):
        if isinstance(key, tuple) and key[0] == "prefix":
            return {"prefix": {"addr": key[1], "len": key[2]}}
        if isinstance(key, tuple):
            return {"range": [key[1], key[2]]}
        return key

    def to_text(self, key):
        if isinstance(key, tuple) and key[0] == "prefix":
            return "%s/%d" % key[1:]
        if isinstance(key, tuple):
            return "%s-%s" % key[1:]
        return key


# --------------------------------------------------------------------------- interval arithmetic


def cover(intervals):
    """Merge (lo, hi) intervals into a sorted list of disjoint, non-adjacent intervals."""
    merged = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [tuple(pair) for pair in merged]


def subtract(base, minus):
    """base - minus, both covers; returns a cover."""
    out = []
    j = 0
    for lo, hi in base:
        cur = lo
        while j < len(minus) and minus[j][1] < cur:
            j += 1
        k = j
        while k < len(minus) and minus[k][0] <= hi:
            if minus[k][0] > cur:
                out.append((cur, minus[k][0] - 1))
            cur = max(cur, minus[k][1] + 1)
            if cur > hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def within(interval, cov):
    """True when interval lies inside one interval of the cover (binary search)."""
    lo, hi = interval
    left, right = 0, len(cov)
    while left < right:
        mid = (left + right) // 2
        if cov[mid][1] < lo:
            left = mid + 1
        else:
            right = mid
    return left < len(cov) and cov[left][0] <= lo and hi <= cov[left][1]


# --------------------------------------------------------------------------- the resource


def _normalise_type(value):
    if isinstance(value, (list, tuple)):
        if not value or not all(isinstance(v, str) for v in value):
            raise NftError("type: a concatenation given as a list must be a list of type names, not %r" % (value,))
        parts = [v.strip() for v in value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(".")]
    else:
        raise NftError("type must be a type name such as ipv4_addr, or a concatenation, not %s" % type(value).__name__)
    for part in parts:
        if part not in ELEMENT_TYPES:
            raise NftError(
                "type %r is not supported: use one of %s, or a concatenation such as 'ipv4_addr . inet_service'"
                % (part, ", ".join(ELEMENT_TYPES))
            )
    return parts[0] if len(parts) == 1 else parts


class NftSet:
    """Manage one named set: definition and elements, applied in one nftables transaction."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.state = self.params["state"]
        self.result = {"changed": False, "commands": []}

    # ---- want
    def _validate(self):
        p = self.params
        for key, what in (("table", "table name"), ("name", "set name")):
            err = check_nft_name(p[key], what=what)
            if err:
                raise NftError(err)
        if p["netns"] is not None:  # "" is not "no namespace": it would act where the module runs
            err = check_netns_name(p["netns"], what="netns")
            if err:
                raise NftError(err)
        if p["comment"] is not None and not _COMMENT_OK.match(p["comment"]):
            raise NftError("comment must be at most 128 printable characters without quotes or backslashes")
        if p["size"] is not None and not 1 <= p["size"] <= 0xFFFFFFFF:
            raise NftError(
                "size %d is invalid: the largest number of elements, 1-4294967295 (omit it for no limit)" % p["size"]
            )
        self.flags = sorted(set(p["flags"] or []))
        if isinstance(p["timeout"], (list, dict, float)):
            raise NftError("timeout must be seconds or an nft duration such as 1h, not %r" % (p["timeout"],))
        # timeout 0 is what nft makes of "timeout 0s": a set with no default lifetime, which it
        # lists without a timeout. It is compared as such, so a second run finds nothing to do.
        self.timeout = parse_duration(p["timeout"])
        if self.timeout and "timeout" not in self.flags:
            raise NftError("timeout needs the timeout flag in flags")
        self.type = _normalise_type(p["type"]) if p["type"] else None
        if self.state in ("merged", "replaced", "overridden") and self.type is None:
            raise NftError("type is required with state=%s" % self.state)
        if self.type is not None and p["family"] in ("ip", "ip6"):
            wrong = "ipv6_addr" if p["family"] == "ip" else "ipv4_addr"
            if wrong in (self.type if isinstance(self.type, list) else [self.type]):
                raise NftError("a set of type %s cannot live in a table of family %s" % (wrong, p["family"]))
        if p["auto_merge"] and "interval" not in self.flags:
            raise NftError("auto_merge needs the interval flag in flags")
        if self.state == "deleted" and p["elements"] is None:
            raise NftError("state=deleted needs elements (use state=flushed to remove them all)")

    def _want_keys(self, codec):
        keys = []
        bad = []
        for raw in self.params["elements"] or []:
            try:
                keys.append(codec.parse(raw))
            except ElementError as exc:
                bad.append("%r (%s)" % (raw, exc))
        if bad:
            raise NftError(
                "invalid elements for a set of type %s: %s%s"
                % (self._type_text(), "; ".join(bad[:5]), " and %d more" % (len(bad) - 5) if len(bad) > 5 else "")
            )
        return keys

    def _type_text(self, typ=None):
        typ = self.type if typ is None else typ
        return " . ".join(typ) if isinstance(typ, list) else str(typ)

    # ---- have
    def _read(self, nft):
        p = self.params
        # Listing a table would dump every set in it with all elements: ask for the set, and
        # only when it is missing, for the list of table names.
        raw = nft.list_object("set", p["family"], p["table"], p["name"])
        if raw is not None:
            return True, raw
        return nft.table_exists(p["family"], p["table"]), None

    def _definition(self, raw):
        if raw is None:
            return None
        typ = raw.get("type")
        return {
            "type": self._type_text(typ if isinstance(typ, str) else list(typ)),
            "flags": sorted(raw.get("flags", [])),
            "timeout": raw.get("timeout"),
            "size": raw.get("size"),
            "comment": raw.get("comment"),
        }

    def _want_definition(self):
        p = self.params
        return {
            "type": self._type_text(),
            "flags": self.flags,
            "timeout": self.timeout or None,  # 0: no default lifetime, which nft lists as no timeout
            "size": p["size"],
            "comment": p["comment"],
        }

    def _mismatch(self, have_def):
        want_def = self._want_definition()
        diffs = []
        for key in ("type", "flags", "timeout", "size", "comment"):
            have, want = have_def[key], want_def[key]
            if key == "timeout":
                if self.timeout is None:
                    continue  # not asked for: whatever the set has is fine
                have, want = have or 0, self.timeout
            elif key in ("size", "comment") and want is None:
                continue  # not asked for: whatever the set has is fine
            if key == "size" and have is None:
                continue
            if have != want:
                diffs.append("%s is %r, want %r" % (key, have, want))
        return diffs

    @staticmethod
    def _split_elem(item):
        if isinstance(item, dict) and "elem" in item:
            inner = item["elem"]
            return inner["val"], inner.get("expires"), inner.get("timeout")
        return item, None, None

    # ---- run
    def run(self):
        try:
            self._validate()
        except NftError as exc:
            self.module.fail_json(msg=str(exc))
        if self.params["netns"] is not None:
            if self.state in ("absent", "deleted", "flushed") and not netns_exists(self.params["netns"]):
                self.result["msg"] = "network namespace %s does not exist: nothing to remove" % self.params["netns"]
                return self.result
            err = enter_netns(self.params["netns"])
            if err:
                self.module.fail_json(msg=err)
        nft = Nft(make_backend(self.module, self.params["backend"]))
        self.result["backend"] = nft.backend.name
        try:
            table_exists, raw = self._read(nft)
            if self.state == "gathered":
                return self._gathered(raw)
            commands, before, after = self._plan(table_exists, raw)
        except NftError as exc:
            self.module.fail_json(msg=str(exc), **self.result)
        self.result["commands"] = _summarise(commands)
        self.result["changed"] = bool(commands)
        if self.module._diff:
            self.result["diff"] = {"before": before, "after": after}
        if commands and not self.check_mode:  # the one write point
            self._apply(nft, commands)
        return self.result

    def _apply(self, nft, commands):
        """The one write: every command in ONE nftables transaction, so the kernel applies all of it or
        nothing. A set that is recreated (state=overridden) and then refused its elements is still the
        old set, with its elements and their expiry, because the kernel aborted the whole batch."""
        try:
            if self._needs_native(commands):
                # nftables drops a set's comment (and 1.0.6 auto-merge) from JSON input (_releases):
                # then the whole transaction goes in nft syntax, still as one batch.
                nft.run_native(self._native_text(commands))
            else:
                nft.run(commands)
        except NftError as exc:
            self.module.fail_json(
                msg="nftables rejected the transaction (nothing was changed): %s" % exc, **self.result
            )

    def _needs_native(self, commands):
        if not nft_json_drops(self.params):
            return False
        return any("add" in c and "set" in c["add"] for c in commands)

    def _native_text(self, commands):
        """COMMANDS (the JSON ones) in nft syntax. Built only from validated names and from elements
        the codecs produced, so no value can end a statement or start another."""
        lines = []
        for cmd in commands:
            ((verb, body),) = cmd.items()
            ((kind, obj),) = body.items()
            if kind == "table":
                lines.append("%s table %s %s" % (verb, obj["family"], obj["name"]))
                continue
            where = "%s %s %s" % (obj["family"], obj["table"], obj["name"])
            if kind == "set" and verb == "add":
                lines.append("add set %s { %s }" % (where, self._native_body(obj)))
            elif kind == "set":
                lines.append("%s set %s" % (verb, where))
            else:  # element
                values = ", ".join(_native_value(e, self.type) for e in obj["elem"])
                lines.append("%s element %s { %s }" % (verb, where, values))
        return "\n".join(lines) + "\n"

    @staticmethod
    def _native_body(obj):
        typ = obj["type"]
        parts = ["type %s;" % (" . ".join(typ) if isinstance(typ, list) else typ)]
        if obj.get("flags"):
            parts.append("flags %s;" % ",".join(obj["flags"]))
        if obj.get("timeout"):
            parts.append("timeout %ds;" % obj["timeout"])
        if obj.get("size"):
            parts.append("size %d;" % obj["size"])
        if obj.get("auto-merge"):
            parts.append("auto-merge;")
        if obj.get("comment") is not None:
            parts.append('comment "%s";' % obj["comment"])
        return " ".join(parts)

    def _gathered(self, raw):
        if raw is None:
            self.result["gathered"] = {}
            return self.result
        codec = make_codec(_raw_type(raw), "interval" in raw.get("flags", []))
        elements = []
        for item in raw.get("elem", []):
            val, expires, timeout = self._split_elem(item)
            entry = {"value": codec.to_text(self._read_elem(codec, val))}
            if expires is not None:
                entry["expires"] = expires
            if timeout is not None:
                entry["timeout"] = timeout
            elements.append(entry)
        gathered = dict(
            self._definition(raw), family=raw["family"], table=raw["table"], name=raw["name"], elements=elements
        )
        self.result["gathered"] = gathered
        return self.result

    def _ident(self):
        p = self.params
        return {"family": p["family"], "table": p["table"], "name": p["name"]}

    def _set_object(self):
        p = self.params
        obj = dict(self._ident(), type=self.type)
        if self.flags:
            obj["flags"] = list(self.flags)
        if self.timeout:
            obj["timeout"] = self.timeout
        if p["size"]:
            obj["size"] = p["size"]
        if p["comment"] is not None:
            obj["comment"] = p["comment"]
        if p["auto_merge"]:
            obj["auto-merge"] = True
        return obj

    def _plan(self, table_exists, raw):
        p = self.params
        ident = self._ident()
        commands = []
        have_def = self._definition(raw)
        before = {"exists": raw is not None}
        if raw is not None:
            before.update(have_def)
        old_raw = recreated = None

        if self.state == "absent":
            if raw is not None:
                commands.append({"delete": {"set": ident}})
            return commands, before, {"exists": False}

        if raw is None:
            if self.state in ("deleted", "flushed"):
                return commands, before, before
            if not table_exists:
                if not p["create_table"]:
                    raise NftError(
                        "table %s %s does not exist (set create_table=true to create it)" % (p["family"], p["table"])
                    )
                commands.append({"add": {"table": {"family": p["family"], "name": p["table"]}}})
            commands.append({"add": {"set": self._set_object()}})
            have_items = []
        else:
            if self.state in ("merged", "replaced", "overridden") and self.type is not None:
                diffs = self._mismatch(have_def)
                if diffs and self.state != "overridden":
                    raise NftError(
                        "set %s %s %s exists with another definition (%s); state=overridden recreates it"
                        % (p["family"], p["table"], p["name"], "; ".join(diffs))
                    )
                if diffs:
                    commands.append({"delete": {"set": ident}})
                    commands.append({"add": {"set": self._set_object()}})
                    old_raw, recreated = raw, True
                    raw = dict(raw, elem=[])
            have_items = raw.get("elem", [])

        typ = self.type
        if typ is None and raw is not None:
            typ = _raw_type(raw)
        flags = self.flags if self.type is not None else (raw or {}).get("flags", [])
        codec = make_codec(typ, "interval" in flags)
        want_keys = self._want_keys(codec) if self.state != "flushed" else []

        have = self._have_keys(codec, have_items)  # (key, expires)

        if isinstance(codec, AddrCodec) and codec.interval:
            delete, add = self._plan_intervals(have, want_keys)
        else:
            delete, add = self._plan_exact(have, want_keys)

        if self.state == "flushed" and have:
            commands.append({"flush": {"set": ident}})
        elif delete:
            commands.append({"delete": {"element": dict(ident, elem=[codec.to_json(k) for k in delete])}})
        if add:
            commands.append({"add": {"element": dict(ident, elem=[codec.to_json(k) for k in add])}})

        deleted = set(delete) if self.state != "flushed" else {k for k, _expires in have}
        after_keys = [k for k, _expires in have if k not in deleted] + list(add)
        # The kernel refuses elements beyond the set's size: say so before sending anything.
        size = p["size"] if p["size"] is not None or recreated else (have_def or {}).get("size")
        if size and len(after_keys) > size:
            raise NftError(
                "set %s %s %s would hold %d elements, more than its size %d: raise size or list fewer elements"
                % (p["family"], p["table"], p["name"], len(after_keys), size)
            )
        after = {"exists": True}
        after.update(self._want_definition() if self.type is not None else have_def or {})
        if self.module._diff:
            if recreated:  # the old elements, read as the old set's type
                old_codec = make_codec(_raw_type(old_raw), "interval" in old_raw.get("flags", []))
                have = self._have_keys(old_codec, old_raw.get("elem", []))
                codec_before = old_codec
            else:
                codec_before = codec
            before["elements"] = sorted(str(codec_before.to_text(k)) for k, _expires in have)
            after["elements"] = sorted(str(codec.to_text(k)) for k in after_keys)
        return commands, before, after

    def _have_keys(self, codec, items):
        """[(key, expires)] of the elements nft listed; an element nft prints in a way this module cannot
        read is an error with a message, not a traceback."""
        have = []
        plain_v4 = isinstance(codec, AddrCodec) and not codec.interval and codec.family == socket.AF_INET
        for item in items:
            if plain_v4 and isinstance(item, str):  # nft prints IPv4 canonically: no parsing needed
                have.append((item, None))
                continue
            val, expires, _timeout = self._split_elem(item)
            have.append((self._read_elem(codec, val), expires))
        return have

    def _read_elem(self, codec, val):
        try:
            return codec.from_json(val)
        except (ElementError, ValueError, KeyError, TypeError, IndexError, OSError) as exc:
            p = self.params
            raise NftError(
                "cannot read element %s of set %s %s %s: %s"
                % (json.dumps(val), p["family"], p["table"], p["name"], exc)
            ) from None

    def _plan_exact(self, have, want_keys):
        state = self.state
        have_keys = {k for k, _expires in have}
        want = set(want_keys)
        add = sorted(want - have_keys, key=repr) if state in ("merged", "replaced", "overridden") else []
        if state == "overridden":
            delete = [k for k, _expires in have if k not in want]
        elif state == "replaced":
            delete = [k for k, exp in have if exp is None and k not in want]
        elif state == "deleted":
            delete = [k for k, _expires in have if k in want]
        else:
            delete = []
        return delete, add

    def _plan_intervals(self, have, want_keys):
        state = self.state
        want_cov = cover(want_keys)
        have_cov = cover([k for k, _expires in have])
        if state == "merged":
            return [], subtract(want_cov, have_cov)
        if state == "flushed":
            return [], []
        if state == "overridden":
            target = want_cov
        elif state == "replaced":
            target = cover(want_keys + [k for k, exp in have if exp is not None])
        else:  # deleted
            target = subtract(have_cov, want_cov)
        keep = [k for k, _expires in have if within(k, target)]
        delete = [k for k, _expires in have if not within(k, target)]
        add = subtract(target, cover(keep))
        return delete, add


def _raw_type(raw):
    return raw["type"] if isinstance(raw["type"], str) else list(raw["type"])


def _native_value(js, typ):
    """One element, as the codecs give it in JSON, in nft syntax."""
    if isinstance(js, dict) and "concat" in js:
        return " . ".join(_native_value(v, t) for v, t in zip(js["concat"], typ))
    if isinstance(js, dict) and "prefix" in js:
        return "%s/%d" % (js["prefix"]["addr"], js["prefix"]["len"])
    if isinstance(js, dict) and "range" in js:
        return "%s-%s" % tuple(_native_value(v, typ) for v in js["range"])
    if isinstance(js, dict) and "elem" in js:
        inner = js["elem"]
        text = _native_value(inner["val"], typ)
        if inner.get("timeout"):
            text += " timeout %ds" % inner["timeout"]
        if inner.get("expires"):
            text += " expires %ds" % inner["expires"]
        return text
    if isinstance(js, int):
        return str(js)
    return '"%s"' % js if typ == "ifname" else js


def _summarise(commands):
    """The commands for the result: element lists are shortened so a 100,000-element run stays readable."""
    out = []
    for cmd in commands:
        ((verb, body),) = cmd.items()
        ((kind, obj),) = body.items()
        if kind == "element":
            elems = obj["elem"]
            out.append({verb: {kind: dict(obj, elem=elems[:20], count=len(elems))}})
        else:
            out.append(cmd)
    return out
