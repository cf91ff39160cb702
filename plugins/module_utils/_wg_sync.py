# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""`splitroute --role ROLE wg-sync IFACE`: a WireGuard interface brought to its configuration with
no restart (wg-quick@IFACE's ExecReload, set by both roles' drop-ins).

The distribution's ExecReload, `wg syncconf IFACE <(wg-quick strip IFACE)`, does not fit the roles'
configurations: the private key is not in them (PostUp sets it from IFACE.key, made on the host), and
syncconf sets what the file gives and clears what it does not, so it would clear the key and, where the
file has no ListenPort (a client), move the interface to a random port (both measured with
wireguard-go: every session stops). So the file syncconf reads is the stripped configuration with the
key from IFACE.key and the interface's running port added. Peers added, changed or removed are applied;
the other peers' sessions and handshakes are untouched. The key goes to `wg` on stdin, never to a
file, an argument or a message.
"""

from __future__ import annotations

import subprocess

from ansible_collections.splitroute.vpn.plugins.module_utils import _host, _names


def sync_text(stripped, private_key, listen_port):
    """The configuration `wg syncconf` takes: STRIPPED (`wg-quick strip`'s output) with PRIVATE_KEY and,
    unless its [Interface] names one, LISTEN_PORT (None: none) in its [Interface] section."""
    lines = stripped.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().lower() == "[interface]")
    except StopIteration:
        raise _host.HostError("wg-quick strip gave no [Interface] section") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("[")), len(lines))
    keys = {line.split("=", 1)[0].strip().lower() for line in lines[start + 1 : end] if "=" in line}
    if "privatekey" in keys:
        raise _host.HostError("the configuration holds a PrivateKey: the roles keep it in its own file")
    added = ["PrivateKey = %s" % private_key]
    if listen_port is not None and "listenport" not in keys:
        added.append("ListenPort = %d" % listen_port)
    return "\n".join(lines[: start + 1] + added + lines[start + 1 :]) + "\n"


def _output(proc, what, secret=None):
    """PROC's stdout, or a HostError naming WHAT with its message (SECRET, if in it, hidden)."""
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip()
        if secret:
            message = message.replace(secret, "(hidden)")
        raise _host.HostError("%s: %s" % (what, message[:500]))
    return proc.stdout


def sync(interface, log, conf=None, key_path=None):
    """Bring INTERFACE to its configuration (CONF, default /etc/wireguard/INTERFACE.conf; its key in KEY_PATH,
    default INTERFACE.key beside it) with `wg syncconf` (sync_text)."""
    conf, key_path = conf or _names.wg_files(interface)[0], key_path or _names.wg_files(interface)[1]
    proc = subprocess.run(["wg-quick", "strip", conf], capture_output=True, text=True, check=False)
    stripped = _output(proc, "wg-quick strip %s" % conf)
    try:
        with open(key_path, encoding="ascii") as fh:
            key = fh.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _host.HostError("%s: %s" % (key_path, exc)) from exc
    proc = subprocess.run(["wg", "show", interface, "listen-port"], capture_output=True, text=True, check=False)
    port = _output(proc, "wg show %s" % interface).strip()
    text = sync_text(stripped, key, int(port) if port.isdigit() and int(port) > 0 else None)
    proc = subprocess.run(
        ["wg", "syncconf", interface, "/dev/stdin"], input=text, capture_output=True, text=True, check=False
    )
    _output(proc, "wg syncconf %s" % interface, secret=key)
    log("splitroute wg-sync: %s brought to its configuration (wg syncconf)" % interface)


def setup(parser):
    parser.add_argument("interface", help="the WireGuard interface (one of the role's)")


def command(interfaces):
    """The role command for the role's INTERFACES(plan): sync one of them, refuse any other name."""

    def run(plan, args, log):
        known = interfaces(plan)
        if args.interface not in known:
            raise _host.HostError(
                "%r is not a WireGuard interface of this role (%s)" % (args.interface, ", ".join(known))
            )
        sync(args.interface, log)
        return 0

    return run
