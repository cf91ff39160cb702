# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Guarded pyroute2 import shared by the netlink modules (pyroute2 0.7 and 0.9)."""

from __future__ import annotations

import traceback
from importlib.metadata import version as metadata_version

from ansible_collections.splitroute.vpn.plugins.module_utils._releases import PYROUTE2_MIN_VERSION

try:
    import pyroute2
    from pyroute2 import IPRoute, NetlinkError

    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
except ImportError:
    pyroute2 = None
    IPRoute = None
    NetlinkError = OSError
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()

MIN_VERSION = PYROUTE2_MIN_VERSION

__all__ = ["HAS_PYROUTE2", "MIN_VERSION", "IPRoute", "NetlinkError", "collect", "pyroute2", "require_pyroute2"]


def pyroute2_version():
    """(major, minor, patch), or None when it cannot be told (Debian's build says "unknown")."""
    raw = getattr(pyroute2, "__version__", "unknown") if pyroute2 else "0"
    if not raw or not str(raw)[0].isdigit():
        try:
            raw = metadata_version("pyroute2")
        except Exception:  # no metadata: nothing to compare
            return None
    parts = []
    for piece in str(raw).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts[:3])


def require_pyroute2(module):
    """Fail the module with Ansible's standard message when pyroute2 is missing or too old."""
    if not HAS_PYROUTE2:
        # imported here: the host program (no ansible on the host) imports this file too
        from ansible.module_utils.basic import missing_required_lib  # noqa: PLC0415 (the host program has no ansible)

        module.fail_json(msg=missing_required_lib("pyroute2 >= 0.7.2"), exception=PYROUTE2_IMPORT_ERROR)
    found = pyroute2_version()
    if found is not None and found < MIN_VERSION:
        module.fail_json(msg="pyroute2 >= 0.7.2 is required, found %s" % getattr(pyroute2, "__version__", "?"))


def collect(result):
    """pyroute2 0.9 may return generators where 0.7 returns lists: always get a list."""
    if result is None:
        return []
    return list(result)
