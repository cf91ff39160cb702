# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Enter a named network namespace for the rest of the module's process."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import stat

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000


def netns_path(name):
    return os.path.join(NETNS_RUN_DIR, name)


def netns_exists(name):
    return os.path.exists(netns_path(name))


def not_a_netns(name):
    """An error when /run/netns/NAME exists but is not a network namespace (else None).

    ``ip netns add`` bind-mounts the namespace there; a plain file left behind (a crash
    between creating and mounting, or a stray ``touch``) is not one, and setns() on it
    fails with a bare EINVAL. Every namespace file is on the one nsfs file system, so
    comparing the device with our own namespace's tells them apart without entering.
    """
    path = netns_path(name)
    try:
        st = os.stat(path)
        nsfs = os.stat("/proc/self/ns/net").st_dev
    except FileNotFoundError:
        return None
    except OSError as exc:
        return "cannot look at %s: %s" % (path, exc.strerror)
    if st.st_dev == nsfs:
        return None
    return (
        "%s exists but is not a network namespace (a %s, not a mounted namespace): it is probably left over "
        "from a namespace that was not created or removed completely. Remove it with "
        "'ip netns delete %s' (or 'rm %s') and run again" % (path, _kind(st), name, path)
    )


def _kind(st):
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISREG(st.st_mode):
        return "plain file" if st.st_size == 0 else "plain file of %d bytes" % st.st_size
    return "special file"


def enter_netns(name):
    """Move this process into network namespace NAME (as created by ``ip netns add``).

    Netlink sockets, libnftables handles and child processes created afterwards
    all act inside that namespace. Returns an error string, or None on success.
    """
    path = netns_path(name)
    if not os.path.exists(path):
        return "network namespace %r does not exist (no %s)" % (name, path)
    error = not_a_netns(name)
    if error:
        return error
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            return "cannot enter network namespace %r: %s" % (name, os.strerror(err))
    finally:
        os.close(fd)
    return None
