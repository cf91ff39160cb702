# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""The enablement and state of many systemd units in one task (module splitroute.vpn.systemd_units).

want(params) -> Want             validates every option; raises UnitsError naming the entry (pure)
show_argv(systemctl, names)      the one `systemctl show` that reads every unit
parse_show(text, names)          its output -> {name: Unit}, mapped by position (pure)
plan(want, have, check_mode)     -> Plan: the systemctl actions in order and the diff; raises UnitsError
                                 for what systemctl would refuse (not found, masked, ...) (pure)
check_host(systemctl, run_dir)   why this host cannot be managed, or None
SystemdUnits(module).run()       the module: want, read, daemon-reload if asked or needed, plan, and
                                 the one place that runs systemctl actions (unless in check mode)
"""

from __future__ import annotations

import os

from ansible_collections.splitroute.vpn.plugins.module_utils._validate import (
    Errors,
    type_name,
    want_bool,
    want_list,
)

# Read for every unit; `units` in the result has all but Id and CanReload.
PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState", "NeedDaemonReload", "CanReload")
# systemd's unit types (src/basic/unit-def.c): the suffix after the last '.'.
UNIT_TYPES = ("service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path", "slice", "scope")
NAME_MAX = 255  # systemd's UNIT_NAME_MAX (256) counts the terminating NUL
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:-_.\\")
STATES = ("started", "stopped", "restarted", "reloaded")
MISSING = ("fail", "ignore")
ENTRY_KEYS = ("name", "enabled", "state", "missing")
MAX_ERRORS = 20
SYSTEMD_RUN_DIR = "/run/systemd/system"  # exists when systemd is PID 1 (sd_booted())

# UnitFileState (systemctl is-enabled) and what enabled: true / false does with it.
# enable: not enabled in /etc. enabled-runtime (a generator's or `enable --runtime` link in /run) and
# linked (`systemctl link`ed, no [Install] symlinks yet) are not enabled at the next boot; after
# `systemctl enable` they read "enabled".
ENABLE_FROM = ("disabled", "enabled-runtime", "linked", "linked-runtime")
# enabled: true leaves these alone: enabled already, or not meant to be enabled (no [Install] section,
# enabled through Also=, made by a generator, transient, an alias, or no unit file at all such as -.mount).
ENABLED_OR_NOT_ENABLEABLE = ("enabled", "static", "indirect", "generated", "transient", "alias", "")
MASKED = ("masked", "masked-runtime")
# enabled: false disables only "enabled": `systemctl disable` cannot undo a link in /run (enabled-runtime
# stays enabled-runtime), and on a linked unit it removes the link itself, so the unit is gone.
DISABLE_FROM = ("enabled",)

# ActiveState. refreshing is systemd >= 254's reload of a running unit's mount images.
RUNNING = ("active", "reloading", "activating", "refreshing")
NOT_RUNNING = ("inactive", "failed", "maintenance")
RELOADABLE = ("active", "reloading", "refreshing")
NOT_FOUND = "not-found"
UNLOADABLE = ("bad-setting", "error")


class UnitsError(ValueError):
    """Input or a unit state this module cannot act on; the message is meant for the user."""


# ---- want ------------------------------------------------------------------------------------


def check_unit_name(name, what):
    """An error naming WHAT unless NAME is a full systemd unit name (NAME.TYPE or PREFIX@INSTANCE.TYPE)."""
    if isinstance(name, bool) or not isinstance(name, str):
        return "%s: must be a string, not %s" % (what, type_name(name))
    if not name:
        return "%s: must not be empty" % what
    for ch in name:
        if ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            return "%s: %r contains a control character (U+%04X)" % (what, name, ord(ch))
    if len(name) > NAME_MAX:
        return "%s: %r is longer than %d characters" % (what, name[:40] + "...", NAME_MAX)
    stem, dot, suffix = name.rpartition(".")
    if not dot or suffix not in UNIT_TYPES:
        return "%s: %r is not a full unit name: it must end in a unit type such as .service (one of %s)" % (
            what,
            name,
            ", ".join("." + t for t in UNIT_TYPES),
        )
    prefix, at, instance = stem.partition("@")
    bad = sorted({ch for ch in prefix + instance if ch not in NAME_CHARS})
    if bad:
        return "%s: %r contains %s: a unit name has only A-Z a-z 0-9 : - _ . \\ and one @ before an instance" % (
            what,
            name,
            " ".join(repr(ch) for ch in bad),
        )
    if not prefix:
        return "%s: %r has no name before %s" % (what, name, "'@'" if at else "." + suffix)
    if at and not instance:
        return "%s: %r is a template: give an instance, such as %s@NAME.%s" % (what, name, prefix, suffix)
    return None


class Entry:
    __slots__ = ("enabled", "index", "missing", "name", "state")

    def __init__(self, index, name, enabled=None, state=None, missing="fail"):
        self.index = index
        self.name = name
        self.enabled = enabled  # True, False or None (left as it is)
        self.state = state  # one of STATES or None (left as it is)
        self.missing = missing

    def what(self):
        return "units[%d] %s" % (self.index, self.name)


class Want:
    __slots__ = ("daemon_reload", "entries", "query")

    def __init__(self, entries, query, daemon_reload):
        self.entries = entries
        self.query = query
        self.daemon_reload = daemon_reload

    def names(self):
        """Every name to read, each once: the units in list order, then the query names not among them."""
        names = [e.name for e in self.entries]
        seen = set(names)
        return names + [q for q in self.query if q not in seen]


def _want_entry(index, item, errors):
    what = "units[%d]" % index
    if not isinstance(item, dict):
        errors.add("%s: must be a dictionary, not %s" % (what, type_name(item)))
        return None
    unknown = sorted(str(k) for k in item if k not in ENTRY_KEYS)
    if unknown:
        errors.add("%s: unknown key %s (known: %s)" % (what, ", ".join(unknown), ", ".join(ENTRY_KEYS)))
    name = item.get("name")
    if name is None:
        errors.add("%s.name: is required" % what)
        return None
    error = check_unit_name(name, what + ".name")
    if error:
        errors.add(error)
        return None
    entry = Entry(index, name)
    if item.get("enabled") is not None:
        entry.enabled, error = want_bool(item["enabled"], "%s.enabled" % what)
        if error:
            errors.add(error)
    state = item.get("state")
    if state is not None and state not in STATES:
        errors.add("%s.state: %r is not one of %s" % (what, state, ", ".join(STATES)))
    entry.state = state
    missing = item.get("missing")
    if missing is None:
        missing = "fail"
    elif missing not in MISSING:
        errors.add("%s.missing: %r is not one of %s" % (what, missing, ", ".join(MISSING)))
    entry.missing = missing
    return entry


def want(params):
    """The validated request; every problem is reported at once."""
    errors = Errors(UnitsError, MAX_ERRORS)
    units, error = want_list(params.get("units"), "units")
    if error:
        errors.add(error)
        units = []
    entries, first = [], {}
    for index, item in enumerate(units):
        entry = _want_entry(index, item, errors)
        if entry is None:
            continue
        if entry.name in first:
            errors.add("units[%d].name: %s is listed twice (also units[%d])" % (index, entry.name, first[entry.name]))
            continue
        first[entry.name] = index
        entries.append(entry)
    query, error = want_list(params.get("query"), "query")
    if error:
        errors.add(error)
        query = []
    names, seen = [], {}
    for index, name in enumerate(query):
        error = check_unit_name(name, "query[%d]" % index)
        if error:
            errors.add(error)
        elif name in seen:
            errors.add("query[%d]: %s is listed twice (also query[%d])" % (index, name, seen[name]))
        else:
            seen[name] = index
            names.append(name)
    daemon_reload = params.get("daemon_reload")
    if daemon_reload is None:
        daemon_reload = False
    else:
        daemon_reload, error = want_bool(daemon_reload, "daemon_reload")
        if error:
            errors.add(error)
    errors.raise_if_any()
    return Want(entries, names, daemon_reload)


# ---- have ------------------------------------------------------------------------------------


class Unit:
    """One unit as `systemctl show` reports it."""

    __slots__ = ("active", "can_reload", "id", "load", "need_reload", "sub", "unit_file")

    def __init__(self, unit_id, load, active, sub, unit_file, need_reload, can_reload):
        self.id = unit_id
        self.load = load
        self.active = active
        self.sub = sub
        self.unit_file = unit_file
        self.need_reload = need_reload
        self.can_reload = can_reload

    def report(self):
        return {
            "load": self.load,
            "active": self.active,
            "sub": self.sub,
            "unit_file": self.unit_file,
            "need_reload": self.need_reload,
        }


def show_argv(systemctl, names):
    return [systemctl, "show", "--property=" + ",".join(PROPERTIES), "--"] + list(names)


def _yes_no(block, key, name):
    value = block[key]
    if value not in ("yes", "no"):
        raise UnitsError("cannot read systemctl show: %s=%r for %s is not yes or no" % (key, value, name))
    return value == "yes"


def parse_show(text, names):
    """{name: Unit} from the output of show_argv(NAMES): one block of KEY=VALUE lines per name, in the
    order of NAMES, blocks separated by empty lines. Blocks are matched to names by position, not by Id:
    an alias reports its unit's Id (ctrl-alt-del.target shows Id=reboot.target)."""
    blocks, block = [], {}
    for line in text.splitlines():
        if not line.strip():
            if block:
                blocks.append(block)
                block = {}
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise UnitsError("cannot read systemctl show: the line %r is not KEY=VALUE" % line[:200])
        if key in block:
            raise UnitsError("cannot read systemctl show: %s twice in one block (a separator is missing)" % key)
        block[key] = value
    if block:
        blocks.append(block)
    if len(blocks) != len(names):
        raise UnitsError(
            "cannot read systemctl show: %d blocks for %d units (%s)" % (len(blocks), len(names), ", ".join(names))
        )
    units = {}
    for name, block in zip(names, blocks):
        absent = [key for key in PROPERTIES if key not in block]
        if absent:
            raise UnitsError("cannot read systemctl show: no %s for %s" % (", ".join(absent), name))
        units[name] = Unit(
            block["Id"],
            block["LoadState"],
            block["ActiveState"],
            block["SubState"],
            block["UnitFileState"],
            _yes_no(block, "NeedDaemonReload", name),
            _yes_no(block, "CanReload", name),
        )
    return units


# ---- plan ------------------------------------------------------------------------------------


class Plan:
    __slots__ = ("diff", "steps")

    def __init__(self):
        self.steps = []  # [(verb, name)] in the order they run: per unit enable/disable, then the state
        self.diff = []  # one Ansible diff per unit that changes

    def actions(self):
        return ["%s %s" % step for step in self.steps]


def _enable_step(entry, unit, errors):
    state = unit.unit_file
    if entry.enabled is True:
        if state in MASKED:
            errors.add("%s: is masked (UnitFileState=%s): unmask it before enabling it" % (entry.what(), state))
        elif state in ENABLE_FROM:
            return "enable"
        elif state not in ENABLED_OR_NOT_ENABLEABLE:
            errors.add("%s: cannot be enabled (UnitFileState=%s)" % (entry.what(), state))
    elif entry.enabled is False and state in DISABLE_FROM:
        return "disable"
    return None


def _state_step(entry, unit, stale, errors):
    active = unit.active
    step = None
    if entry.state == "started" and active not in RUNNING:
        step = "start"
    elif entry.state == "stopped" and active not in NOT_RUNNING:
        step = "stop"
    elif entry.state == "restarted":
        step = "restart"
    elif entry.state == "reloaded":
        step = "reload" if active in RELOADABLE else "start"
    if step in (None, "stop"):
        return step
    if unit.load == "masked":
        errors.add("%s: is masked: systemctl cannot %s it" % (entry.what(), step))
    elif unit.load in UNLOADABLE and not stale:
        errors.add(
            "%s: systemd could not load it (LoadState=%s): systemctl cannot %s it; see systemctl status %s"
            % (entry.what(), unit.load, step, entry.name)
        )
    elif step == "reload" and not unit.can_reload and not stale:
        errors.add("%s: cannot be reloaded (CanReload=no): use state restarted" % entry.what())
    return step


def _unit_text(unit_file, active):
    return "enabled: %s\nactive: %s\n" % (unit_file, active)


_AFTER_ACTIVE = {"start": "active", "stop": "inactive", "restart": "active (restarted)", "reload": "active (reloaded)"}


def plan(w, have, check_mode):
    """The actions for W's units, given HAVE ({name: Unit} as read). Raises UnitsError, naming every
    unit, for what systemctl would refuse, so that nothing is changed.

    A unit systemd does not know (LoadState=not-found) is skipped with missing=ignore; with missing=fail
    it is an error, except in check mode: there it is planned as a disabled, inactive unit, because on a
    new host the unit file the same play writes is not written in check mode."""
    errors = Errors(UnitsError, MAX_ERRORS)
    not_found = []
    p = Plan()
    for entry in w.entries:
        unit = have[entry.name]
        if unit.load == NOT_FOUND:
            if entry.missing == "ignore":
                continue
            if not check_mode:
                not_found.append(entry.name)
                continue
            unit = Unit(unit.id, NOT_FOUND, unit.active, unit.sub, "disabled", False, True)
            before_file = NOT_FOUND
        else:
            before_file = unit.unit_file or "-"
        stale = check_mode and unit.need_reload  # what systemd has loaded is older than the file
        steps = [s for s in (_enable_step(entry, unit, errors), _state_step(entry, unit, stale, errors)) if s]
        if not steps:
            continue
        after_file, after_active = before_file, unit.active
        for step in steps:
            p.steps.append((step, entry.name))
            if step in ("enable", "disable"):
                after_file = step + "d"
            else:
                after_active = _AFTER_ACTIVE[step]
        p.diff.append(
            {
                "before_header": entry.name,
                "after_header": entry.name,
                "before": _unit_text(before_file, unit.active),
                "after": _unit_text(after_file, after_active),
            }
        )
    if not_found:
        errors.add(
            "not found (LoadState=not-found): %s; give missing: ignore to units that may not be installed"
            % ", ".join(not_found)
        )
    errors.raise_if_any()
    return p


# ---- host ------------------------------------------------------------------------------------


def _pid1():
    try:
        with open("/proc/1/comm") as fh:
            return fh.read().strip() or "unknown"
    except OSError:
        return "unknown"


def check_host(systemctl, run_dir=SYSTEMD_RUN_DIR):
    """Why units cannot be managed here (systemd is not PID 1, or there is no systemctl), or None."""
    if not os.path.isdir(run_dir):
        return "this host is not run by systemd (%s does not exist; PID 1 is %s): there are no units to manage" % (
            run_dir,
            _pid1(),
        )
    if not systemctl:
        return "systemctl was not found on this host: the module manages the units of a running systemd"
    return None


# ---- the module ------------------------------------------------------------------------------


class SystemdUnits:
    """want, have, plan; _act() is the only place that changes anything, and never in check mode."""

    def __init__(self, module):
        self.module = module
        self.check_mode = module.check_mode
        self.systemctl = None
        self.result = {"changed": False, "actions": [], "units": {}}
        self.diff = []

    def fail(self, msg):
        result = dict(self.result, changed=bool(self.result["actions"]) and not self.check_mode)
        self.module.fail_json(msg=msg, **result)

    def run(self):
        try:
            w = want(self.module.params)
        except UnitsError as exc:
            self.fail("invalid input, nothing was changed: %s" % exc)
        self.systemctl = self.module.get_bin_path("systemctl")
        problem = check_host(self.systemctl)
        if problem:
            self.fail(problem)
        names = w.names()
        if w.daemon_reload:
            self._daemon_reload("daemon_reload: true")
        have = self._show(names)
        self.result["units"] = {name: have[name].report() for name in names}
        if not w.daemon_reload:
            stale = [e.name for e in w.entries if have[e.name].need_reload]
            if stale:
                self._daemon_reload("NeedDaemonReload=yes: %s" % ", ".join(stale))
                if not self.check_mode:
                    have = self._show(names)
        try:
            p = plan(w, have, self.check_mode)
        except UnitsError as exc:
            done = self.result["actions"] and not self.check_mode
            self.fail("%s: %s" % ("nothing was changed but the daemon-reload" if done else "nothing was changed", exc))
        self.diff.extend(p.diff)
        for verb, name in p.steps:
            self._act(verb, name)
        self.result["changed"] = bool(self.result["actions"])
        if self.module._diff:
            self.result["diff"] = self.diff
        self.module.exit_json(**self.result)

    def _show(self, names):
        if not names:  # `systemctl show` without a name shows the manager's properties
            return {}
        rc, out, err = self.module.run_command(show_argv(self.systemctl, names))
        if rc != 0:
            self.fail("systemctl show failed (rc %d): %s" % (rc, (err or out).strip()))
        try:
            return parse_show(out, names)
        except UnitsError as exc:
            self.fail(str(exc))

    def _daemon_reload(self, why):
        self.diff.append({"prepared": "systemctl daemon-reload (%s)\n" % why})
        self._act("daemon-reload")

    def _act(self, verb, name=None):
        """The one write: one systemctl call per action, recorded in actions once done (or, in check
        mode, once it would be)."""
        action = verb if name is None else "%s %s" % (verb, name)
        if not self.check_mode:
            argv = [self.systemctl, verb] + ([] if name is None else ["--", name])
            rc, out, err = self.module.run_command(argv)
            if rc != 0:
                done = self.result["actions"]
                self.fail(
                    "%ssystemctl %s failed (rc %d): %s%s"
                    % (
                        "" if name is None else name + ": ",
                        verb,
                        rc,
                        (err or out).strip() or "no message",
                        " (done before: %s)" % ", ".join(done) if done else " (nothing was changed)",
                    )
                )
        self.result["actions"].append(action)
