# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Enter a named network namespace for the rest of the module's process."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000


def netns_path(name):
    return os.path.join(NETNS_RUN_DIR, name)


def netns_exists(name):
    return os.path.exists(netns_path(name))


def enter_netns(name):
    """Move this process into network namespace NAME (as created by ``ip netns add``).

    Netlink sockets, libnftables handles and child processes created afterwards
    all act inside that namespace. Returns an error string, or None on success.
    """
    path = netns_path(name)
    if not os.path.exists(path):
        return "network namespace %r does not exist (no %s)" % (name, path)
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            return "cannot enter network namespace %r: %s" % (name, os.strerror(err))
    finally:
        os.close(fd)
    return None
