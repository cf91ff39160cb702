# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""The host program `splitroute`: what must happen on a host between Ansible runs.

The roles render their validated plan to /etc/splitroute/ROLE.json and install this
program (role splitroute.vpn.runtime): the collection's module_utils files are copied to
/usr/lib/splitroute/ansible_collections/splitroute/vpn/plugins/module_utils/ and
/usr/sbin/splitroute puts /usr/lib/splitroute first on sys.path, so the same files (and
the same imports) serve the modules, the filters and the host. Nothing here imports
ansible: the hosts have only Python 3 and the modules' libraries (pyroute2, nftables).

Each role's part lives in _host_ROLE.py and exports COMMANDS, a dict of subcommand name
-> function(plan, args, log) returning an exit status (0 ok). `splitroute NAME` runs the
function of every role whose plan file exists, in ROLES order, and fails (status 1) if
any of them failed; a role without a plan file is skipped. `splitroute --role ROLE NAME` runs
only ROLE's function (what a role's systemd unit runs: a host with both roles must not run the
client's boot from the gateway's unit), and fails (status 2) when ROLE has no plan on this
host or no command NAME. `splitroute plans` lists the plans.

Host-wide commands (`status`, `metrics`) live in _host_status.py: COMMANDS name -> (setup(parser),
fn(plans, args, log)), plans being role -> plan or None. Each runs once, with every plan, whether
or not there is any; a role's command of the same name is not offered.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile

PLAN_DIR = "/etc/splitroute"
LIB_DIR = "/usr/lib/splitroute"
PROGRAM = "/usr/sbin/splitroute"
RUN_DIR = "/run/splitroute"
STATE_DIR = "/var/lib/splitroute"
ROLES = ("client", "gateway")
PLAN_VERSION = 1


class HostError(Exception):
    """A failure with a message for the journal; no traceback."""


def plan_path(role, plan_dir=None):
    return os.path.join(plan_dir or os.environ.get("SPLITROUTE_PLAN_DIR") or PLAN_DIR, "%s.json" % role)


def load_plan(role, plan_dir=None):
    """The plan ROLE rendered on this host, or None when it has none. Raises HostError."""
    path = plan_path(role, plan_dir)
    try:
        with open(path, encoding="utf-8") as fh:
            plan = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise HostError("%s: cannot be read: %s" % (path, exc)) from exc
    return check_plan(plan, role, path)


def check_plan(plan, role, where):
    """PLAN when it is a plan of ROLE this program reads; raises HostError naming WHERE."""
    if not isinstance(plan, dict) or plan.get("role") != role:
        raise HostError("%s: not a plan of role %s (no \"role\": %r)" % (where, role, role))
    if plan.get("version") != PLAN_VERSION:
        raise HostError(
            "%s: plan version %r, this program reads %d: run the role again"
            % (where, plan.get("version"), PLAN_VERSION)
        )
    return plan


def _setup(command):
    """A role command's argument setup: COMMANDS values are fn or (setup(parser), fn)."""
    return command[0] if isinstance(command, tuple) else None


def _function(command):
    return command[1] if isinstance(command, tuple) else command


class Backend:
    """The narrow contract module_utils backends use (params, check_mode, warn, fail_json),
    for the host: a failure raises HostError instead of exiting."""

    _diff = False

    def __init__(self, params, log):
        self.params = dict(params)
        self.check_mode = False
        self._log = log

    def warn(self, msg):
        self._log("warning: %s" % msg)

    def fail_json(self, msg, **_kw):
        raise HostError(msg)


def merge_rules(rules, routes, log):
    """RULES and ROUTES in place (policy_rule's code, state merged: nothing else is touched); each
    change logged as `splitroute boot: COMMAND`. The boot of every role ends with this."""
    from ansible_collections.splitroute.vpn.plugins.module_utils._policy_rule import (  # noqa: PLC0415 (only boot needs pyroute2)
        PolicyRouting,
    )

    params = {"rules": rules, "routes": routes, "scope": None, "table_names": None, "state": "merged", "netns": None}
    for command in PolicyRouting(Backend(params, log)).run()["commands"]:
        log("splitroute boot: %s" % command)


def _log(msg):
    sys.stderr.write("%s\n" % msg)
    sys.stderr.flush()


def write_atomic(path, text, mode=0o644):
    """TEXT to PATH through a new temporary file in the same directory (never an existing one:
    O_EXCL), flushed to disk and renamed over PATH: a reader sees the old text or the new."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def role_commands(role):
    module = importlib.import_module("%s._host_%s" % (__name__.rsplit(".", 1)[0], role))
    return module.COMMANDS


def host_commands():
    module = importlib.import_module("%s._host_status" % __name__.rsplit(".", 1)[0])
    return module.COMMANDS


def main(argv=None, log=_log):
    parser = argparse.ArgumentParser(prog="splitroute", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--plan-dir", default=None, help="where the plans are (default %s)" % PLAN_DIR)
    parser.add_argument(
        "--role", choices=ROLES, default=None, help="run the command of this role only (it must have a plan)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("plans", help="list the plans on this host")
    host_wide = host_commands()
    for name in sorted(host_wide):
        setup, fn = host_wide[name]
        setup(sub.add_parser(name, help=(fn.__doc__ or name).split("\n")[0]))
    names = {}
    for role in ROLES:
        for name in role_commands(role):
            if name not in host_wide:
                names.setdefault(name, []).append(role)
    for name in sorted(names):
        cmd = sub.add_parser(name, help="run %s for %s" % (name, ", ".join(names[name])))
        setups = {_setup(role_commands(role)[name]) for role in names[name]} - {None}
        for setup in setups:
            setup(cmd)
        if not setups:
            cmd.add_argument("--json", action="store_true", help="print JSON")
            cmd.add_argument("--textfile", default=None, help="write Prometheus metrics to this path (atomic)")
    args = parser.parse_args(argv)

    try:
        # with --role, another role's plan (even a broken one) is not read
        plans = {role: load_plan(role, args.plan_dir) if args.role in (None, role) else None for role in ROLES}
        if getattr(args, "plan_stdin", False):
            if args.role is None:
                raise HostError("--plan-stdin needs --role")
            plans[args.role] = check_plan(json.load(sys.stdin), args.role, "the plan on stdin")
    except (HostError, ValueError) as exc:
        log("splitroute: %s" % exc)
        return 2
    if args.role is not None:
        if args.command == "plans" or args.command in host_wide:
            log("splitroute: --role applies to a role's commands, not to %s" % args.command)
            return 2
        if args.command not in role_commands(args.role):
            log("splitroute: role %s has no command %s" % (args.role, args.command))
            return 2
        if plans[args.role] is None:
            path = plan_path(args.role, args.plan_dir)
            log("splitroute %s: role %s has no plan on this host (%s)" % (args.command, args.role, path))
            return 2

    if args.command == "plans":
        for role in ROLES:
            sys.stdout.write("%s %s\n" % (role, plan_path(role, args.plan_dir) if plans[role] else "-"))
        return 0

    if args.command in host_wide:
        try:
            return host_wide[args.command][1](plans, args, log)
        except HostError as exc:
            log("splitroute %s: %s" % (args.command, exc))
            return 1

    status = 0
    for role in (args.role,) if args.role else ROLES:
        fn = _function(role_commands(role).get(args.command))
        if fn is None or plans[role] is None:
            continue
        try:
            rc = fn(plans[role], args, log)
        except HostError as exc:
            log("splitroute %s (%s): %s" % (args.command, role, exc))
            rc = 1
        status = status or rc
    return status
