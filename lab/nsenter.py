"""Enter a lab host (a privileged podman container of this machine) with nsenter.

`podman exec` costs about 0.12 s here; nsenter a few milliseconds. The lab's Ansible
connection (lab/plugins/connection/srlab_nsenter.py) and the tests' testinfra hosts
(molecule/resources/lablib.py) both enter hosts this way, with the same namespaces and
the environment podman gives the container's init, never the caller's.

The container's init is found by `podman inspect` once and cached under /run, checked
against the process's start time: a restarted container is looked up again.
"""

from __future__ import annotations

import json
import os
import subprocess

CACHE = "/run/srlab/nsenter"
NAMESPACES = ["--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--root", "--wd"]


class NotRunning(Exception):
    """The container has no running init."""


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (counted after the command in parentheses), or None when PID is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            stat = handle.read().decode()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def container_init(name: str) -> int:
    """The host PID of container NAME's init, cached while that process lives."""
    path = os.path.join(CACHE, name)
    try:
        with open(path) as handle:
            cached = json.load(handle)
        if start_time(cached["pid"]) == cached["start"]:
            return cached["pid"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    proc = subprocess.run(
        ["podman", "inspect", "--type", "container", "--format", "{{.State.Pid}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    pid = int(proc.stdout.strip() or 0) if proc.returncode == 0 else 0
    start = start_time(pid) if pid > 0 else None
    if start is None:
        raise NotRunning("lab host %s is not running %s" % (name, proc.stderr.strip()))
    os.makedirs(CACHE, exist_ok=True)
    tmp = "%s.%d" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump({"pid": pid, "start": start}, handle)
    os.replace(tmp, path)
    return pid


def environment(pid: int) -> dict:
    """The environment of process PID (what podman gave the container's init)."""
    with open("/proc/%d/environ" % pid, "rb") as handle:
        items = [item.decode(errors="surrogateescape") for item in handle.read().split(b"\0") if b"=" in item]
    return dict(item.split("=", 1) for item in items)


def run(name: str, argv: list, in_data: bytes | None = None, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """Run ARGV in lab host NAME; stdout and stderr captured (stdout may be a file)."""
    pid = container_init(name)
    return subprocess.run(
        ["nsenter", "--target", str(pid), *NAMESPACES, *argv],
        input=in_data,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=environment(pid),
        check=False,
    )
