# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""The host program's host-wide commands (see _host.py): `splitroute status [--json]` and
`splitroute metrics [--textfile PATH]`.

They run the commands playbooks/status.yml ran (ip -j link/rule/route, ip -j netns list, nft -j list
table, wg show all dump) on the host and build the report with the status filter's own code
(_status.py). The settings the report compares the host with (tunnel names and marks, priority and
table bases, the gateway's interface, peers and providers, the nft tables' names) come from the
roles' plans in /etc/splitroute, not from inventory. The WireGuard private and preshared keys in
wg's dump are replaced as soon as it is read: never kept, parsed or printed.

COMMANDS: name -> (setup(parser), fn(plans, args, log)); plans is role -> plan (None when the role
has none). They run once per call, with or without plans (a host with none is "not configured").
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

from . import _status
from ._host import HostError, write_atomic

TIMEOUT = 30
# An absolute path ending in .prom, made of characters that need no quoting anywhere (a unit file,
# a command line): node-exporter's textfile collector reads only *.prom, and the temporary file
# write_atomic makes next to it (.NAME.tmp) is never one.
TEXTFILE = re.compile(r"/(?:[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*/)*[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*\.prom")
_ENV_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _dict(value):
    return value if isinstance(value, dict) else {}


def _list(value):
    return value if isinstance(value, list) else []


def _first(*values):
    """The first value that is given (not None, not missing)."""
    return next((v for v in values if v is not None), None)


def _client_tunnels(plan):
    """The client plan's tunnels, read defensively: a list under "tunnels" (or "plan")."""
    for key in ("tunnels", "plan"):
        if isinstance(plan.get(key), list):
            return [t for t in plan[key] if isinstance(t, dict)]
    return []


def settings(plans, host=None):
    """The status report's settings, from the plans (role -> plan or None). Only names, numbers and public
    keys are taken; a wrong value is passed on as it is and the report notes it (and keeps its default)."""
    out = {"host": host if host is not None else socket.gethostname()}
    client = plans.get("client")
    if isinstance(client, dict):
        tunnels = _client_tunnels(client)
        given = _dict(client.get("settings"))
        out["client_table"] = _first(
            _dict(client.get("nft")).get("table"), client.get("nft_table"), given.get("nft_table"), _status.CLIENT_TABLE
        )
        base = _first(client.get("priority_base"), given.get("priority_base"))
        if base is not None:
            out["client_priority_base"] = base
        out["client_tunnels"] = [t.get("name") for t in tunnels]
        out["client_marks"] = {
            t["name"]: t["fwmark"] for t in tunnels if isinstance(t.get("name"), str) and t.get("fwmark") is not None
        }
    gateway = plans.get("gateway")
    if isinstance(gateway, dict):
        providers = [p for p in _list(gateway.get("providers")) if isinstance(p, dict)]
        out["gateway_table"] = _first(gateway.get("nft_table"), _status.GATEWAY_TABLE)
        for key in ("priority_base", "table_base", "interface"):
            if gateway.get(key) is not None:
                out["gateway_" + key] = gateway[key]
        out["gateway_peers"] = [
            {k: p.get(k) for k in ("name", "public_key", "address")}
            for p in _list(gateway.get("peers"))
            if isinstance(p, dict)
        ]
        out["gateway_providers"] = [p.get("name") for p in providers]
    return out


def _table_name(value, default):
    """A table name as the plan gives it, or DEFAULT when it could not reach nft's command line as one word."""
    return value if isinstance(value, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", value) else default


def run(*argv):
    """One command's result as the playbook registered it: rc, stdout, stderr (and msg when it did not run)."""
    env = dict(os.environ, LC_ALL="C", PATH=os.environ.get("PATH") or _ENV_PATH)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", env=env, timeout=TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    except FileNotFoundError:
        return {"rc": 127, "stdout": "", "stderr": "", "msg": "%s: command not found" % argv[0]}
    except subprocess.TimeoutExpired:
        return {"rc": 124, "stdout": "", "stderr": "", "msg": "no answer after %d s" % TIMEOUT}
    except OSError as exc:
        return {"rc": 126, "stdout": "", "stderr": "", "msg": "%s: %s" % (argv[0], exc.strerror)}
    return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def collect(config):
    """Every input of the report, read on this host now: the commands playbooks/status.yml runs."""
    client_table = _table_name(config.get("client_table"), _status.CLIENT_TABLE)
    gateway_table = _table_name(config.get("gateway_table"), _status.GATEWAY_TABLE)
    raw = {
        "now": {"rc": 0, "stdout": "%d\n" % int(time.time()), "stderr": ""},
        "links": run("ip", "-j", "link", "show"),
        "rules4": run("ip", "-4", "-j", "rule", "show"),
        "rules6": run("ip", "-6", "-j", "rule", "show"),
        "routes4": run("ip", "-4", "-j", "route", "show", "table", "all"),
        "routes6": run("ip", "-6", "-j", "route", "show", "table", "all"),
        "netns": run("ip", "-j", "netns", "list"),
        # `list table` prints every set with its elements, whatever the sets are called
        "nft_client": run("nft", "-j", "list", "table", "inet", client_table),
        "nft_gateway": run("nft", "-j", "list", "table", "inet", gateway_table),
    }
    wg = run("wg", "show", "all", "dump")
    # the keys go before anything else reads the dump
    wg["stdout"] = _status.redact_wg_dump(wg.get("stdout", ""))
    raw["wg"] = wg
    return raw


def list_states(plan):
    """The client's domain_sources with their states on the host (_host_lists), for the report."""
    if not isinstance(plan, dict):
        return []
    from ._host_lists import lists_dir, read_state, sources  # noqa: PLC0415 (only a client has lists)

    try:
        directory = lists_dir(plan)
        applied = _dict(_read_json(os.path.join(directory, "applied.json")).get("conflicts"))
        out = []
        for tunnel, source in sources(plan):
            state = read_state(directory, source)
            out.append(
                dict(
                    {
                        k: state.get(k)
                        for k in (
                            "last_fetch",
                            "last_success",
                            "domains",
                            "networks",
                            "invalid",
                            "failures",
                            "last_error",
                        )
                    },
                    tunnel=tunnel,
                    source=source.get("url") or source.get("path"),
                    conflicts=_dict(applied.get(source["id"])).get("count", 0),
                )
            )
        return out
    except (KeyError, TypeError, AttributeError):
        return []


def failover_state(plan):
    """What splitroute health last wrote (_host_health), or None (no plan, or nothing with a fallback)."""
    if not isinstance(plan, dict) or not isinstance(plan.get("failover"), dict):
        return None
    from ._host_health import state_path  # noqa: PLC0415 (only a role with a failover reads it)

    return _read_json(state_path(plan)) or None


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return _dict(json.load(fh))
    except (OSError, ValueError):
        return {}


def report(plans, host=None):
    config = settings(plans, host)
    raw = collect(config)
    raw["lists"] = list_states(plans.get("client"))
    # the client's tunnels and the gateway's providers with a fallback (each role's splitroute health)
    states = [failover_state(plans.get(role)) for role in ("client", "gateway")]
    states = [st for st in states if st]
    raw["failover"] = (
        {
            key: {k: v for st in states for k, v in _dict(st.get(key)).items()}
            for key in ("groups", "exits", "endpoints")
        }
        if states
        else None
    )
    return _status.status_report(raw, config)


def _host_option(parser):
    parser.add_argument(
        "--host", default=None, help="the host label in the report and the metrics (default: the hostname)"
    )


def _setup_status(parser):
    parser.add_argument("--json", action="store_true", help="print the report as JSON (with its lines and metrics)")
    _host_option(parser)


def _setup_metrics(parser):
    parser.add_argument(
        "--textfile",
        default=None,
        help="write them to PATH (ending in .prom; a temporary file and a rename, mode 0644), not to stdout",
    )
    _host_option(parser)


def _label(args):
    host = getattr(args, "host", None)
    if host is not None and (not host or _status._CONTROL.search(host)):
        raise HostError("--host: must be a name without control characters")
    return host


def cmd_status(plans, args, log):
    """print the host's split-tunnel status (readable, or --json)"""
    built = report(plans, _label(args))
    if args.json:
        sys.stdout.write(json.dumps(built, sort_keys=True) + "\n")
    else:
        sys.stdout.write("".join(line + "\n" for line in built["lines"]))
    sys.stdout.flush()
    return 0


def cmd_metrics(plans, args, log):
    """the status as Prometheus metrics, printed or written to --textfile (atomic)"""
    path = args.textfile
    if path is not None and (not TEXTFILE.fullmatch(path) or "/../" in path or "/./" in path):
        raise HostError(
            "--textfile: %r must be an absolute path ending in .prom, of letters, digits and ._@+- only "
            "(node-exporter's textfile collector reads *.prom)" % path
        )
    built = report(plans, _label(args))
    if path is None:
        sys.stdout.write(built["metrics"])
        sys.stdout.flush()
        return 0
    try:
        # node-exporter's directory, made when missing (an existing one keeps its owner and mode)
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        write_atomic(path, built["metrics"], 0o644)
    except OSError as exc:
        raise HostError("%s: cannot be written: %s" % (path, exc.strerror or exc)) from None
    return 0


COMMANDS = {
    "status": (_setup_status, cmd_status),
    "metrics": (_setup_metrics, cmd_metrics),
}
