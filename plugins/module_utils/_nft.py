# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""nftables access through libnftables' JSON API (or ``nft -j`` when the binding is missing)."""

from __future__ import annotations

import json
import re

try:
    import nftables as _nftables_binding

    HAS_NFTABLES_BINDING = True
except ImportError:  # the nft binary in JSON mode is used instead
    _nftables_binding = None
    HAS_NFTABLES_BINDING = False

FAMILIES = ("inet", "ip", "ip6", "bridge", "netdev")
_TIME_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_TIME_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?\Z")


class NftError(Exception):
    pass


def parse_duration(value, what="timeout"):
    """Seconds from an int, a digit string or an nft duration such as ``1h30m`` or ``90s``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise NftError("%s %r is not a duration" % (what, value))
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip()
        if text.isdigit():
            seconds = int(text)
        else:
            match = _TIME_RE.match(text)
            if not text or not match:
                raise NftError("%s %r is not a duration: use seconds or a form like 1d, 2h30m, 90s" % (what, value))
            seconds = sum(int(n or 0) * _TIME_UNITS[u] for n, u in zip(match.groups(), "dhms"))
    if seconds < 0:
        raise NftError("%s %r must not be negative" % (what, value))
    return seconds


class LibBackend:
    """libnftables through the python3-nftables binding, in this process's network namespace."""

    name = "libnftables"

    def __init__(self):
        self.nft = _nftables_binding.Nftables()
        self.nft.set_json_output(True)
        self.nft.set_handle_output(False)

    def run(self, doc):
        rc, out, err = self.nft.cmd(json.dumps(doc))
        return rc, (json.loads(out) if out else {}), err

    def run_native(self, text):
        rc, _out, err = self.nft.cmd(text)
        return rc, err


class CliBackend:
    """The nft binary in JSON mode (``nft -j -f -``)."""

    name = "nft -j"

    def __init__(self, module):
        self.module = module
        self.binary = module.get_bin_path("nft", required=True)

    def run(self, doc):
        rc, out, err = self.module.run_command([self.binary, "-j", "-f", "-"], data=json.dumps(doc), binary_data=True)
        try:
            parsed = json.loads(out) if out.strip() else {}
        except ValueError:
            parsed = {}
        return rc, parsed, err

    def run_native(self, text):
        rc, _out, err = self.module.run_command([self.binary, "-f", "-"], data=text, binary_data=True)
        return rc, err


def make_backend(module, prefer="auto"):
    if prefer in ("auto", "libnftables") and HAS_NFTABLES_BINDING:
        return LibBackend()
    if prefer == "libnftables":
        module.fail_json(msg="backend=libnftables was requested but the python3-nftables binding is not importable")
    return CliBackend(module)


class Nft:
    """A thin JSON client: every command is one libnftables transaction."""

    def __init__(self, backend):
        self.backend = backend

    def run(self, commands):
        if not commands:
            return {}
        rc, out, err = self.backend.run({"nftables": commands})
        if rc != 0:
            raise NftError((err or "nft failed with status %s" % rc).strip())
        return out

    def run_native(self, text):
        """One transaction in nft's own syntax, for what nftables' JSON parser drops
        (_releases.NFT_JSON_DROPS). Callers build TEXT only from validated values."""
        rc, err = self.backend.run_native(text)
        if rc != 0:
            raise NftError((err or "nft failed with status %s" % rc).strip())

    def table_exists(self, family, name):
        rc, out, err = self.backend.run({"nftables": [{"list": {"tables": None}}]})
        if rc != 0:
            raise NftError((err or "nft list tables failed").strip())
        return any(
            item["table"]["family"] == family and item["table"]["name"] == name
            for item in out.get("nftables", [])
            if "table" in item
        )

    def list_object(self, kind, family, table, name=None):
        """Return the listed object's dict, or None when it does not exist."""
        obj = {"family": family, "name": table} if kind == "table" else {"family": family, "table": table, "name": name}
        rc, out, err = self.backend.run({"nftables": [{"list": {kind: obj}}]})
        if rc != 0:
            if "No such file or directory" in (err or "") or "does not exist" in (err or ""):
                return None
            raise NftError((err or "nft list %s failed" % kind).strip())
        for item in out.get("nftables", []):
            if kind in item:
                return item[kind]
        return None
