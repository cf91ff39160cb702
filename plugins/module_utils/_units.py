# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Which of a role's units start, restart or reload after a run wrote its files.

A role writes its files in a few tasks (file_tree, one per directory tree) and then brings its
units up in boot order with one systemd_units task. Its plan says, per unit, which files it
reads: a unit whose restart file changed is restarted, one whose reload file changed (and no
restart file) is reloaded, every other one is only started. Nothing here imports ansible.
"""

from __future__ import annotations


def changed_paths(results):
    """The absolute paths that RESULTS (registered results of file_tree and of modules that write
    one file and return its `path`) created, updated or removed; directories (file_tree's names
    ending in /) are left out. A skipped or unchanged result adds nothing."""
    out = set()
    for result in results or []:
        if not isinstance(result, dict) or not result.get("changed"):
            continue
        root = result.get("path")
        if not isinstance(root, str) or not root:
            continue
        names = [
            name
            for key in ("created", "updated", "removed")
            for name in result.get(key) or []
            if isinstance(name, str) and not name.endswith("/")
        ]
        if not any(key in result for key in ("created", "updated", "removed")):
            out.add(root)  # a one-file module: its path changed
        for name in names:
            out.add(root.rstrip("/") + "/" + name)
    return sorted(out)


def unit_states(start, triggers, changed, enabled=True):
    """systemd_units' `units` for START (unit names in boot order): each enabled (ENABLED) and
    restarted when one of its TRIGGERS[name]["restart"] paths is in CHANGED, reloaded when one of
    its "reload" paths is, started otherwise."""
    changed = set(changed or [])
    triggers = triggers or {}
    out = []
    for name in start:
        own = triggers.get(name) or {}
        if changed.intersection(own.get("restart") or []):
            state = "restarted"
        elif changed.intersection(own.get("reload") or []):
            state = "reloaded"
        else:
            state = "started"
        out.append({"name": name, "enabled": enabled, "state": state})
    return out


def units_with(names, enabled=None, state=None, missing=None):
    """systemd_units' `units` for NAMES, each with the same ENABLED, STATE and MISSING (None: left out)."""
    extra = {k: v for k, v in (("enabled", enabled), ("state", state), ("missing", missing)) if v is not None}
    return [dict({"name": name}, **extra) for name in names]
