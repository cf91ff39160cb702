"""Ansible connection to a lab host: a podman container of this machine, entered with nsenter.

The containers.podman connection cannot pipeline and runs `podman exec` (0.12 s here) four
times a task (mkdir, chmod, python, rm). This one enters the container's namespaces
(lab/nsenter.py, a few milliseconds) and pipelines: a task is one process in the host.
"""

from __future__ import annotations

DOCUMENTATION = """
name: srlab_nsenter
short_description: Run tasks in a lab host (a podman container) through nsenter
description:
  - Enters the mount, UTS, IPC, network, PID and cgroup namespaces and the root of the
    container's init process, with its environment; pipelines modules.
options:
  remote_addr:
    description: The container's name.
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
"""

import os
import shlex
import sys

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import nsenter  # lab/nsenter.py

display = Display()


class Connection(ConnectionBase):
    transport = "srlab_nsenter"
    has_pipelining = True

    def _connect(self):
        super()._connect()
        self._connected = True
        return self

    def _run(self, argv, in_data=None, stdout=None):
        name = self.get_option("remote_addr")
        display.vvv("NSENTER %s" % argv, host=name)
        try:
            if stdout is None:
                proc = nsenter.run(name, argv, in_data=in_data)
            else:
                proc = nsenter.run(name, argv, in_data=in_data, stdout=stdout)
        except nsenter.NotRunning as exc:
            raise AnsibleConnectionFailure(str(exc)) from exc
        return proc.returncode, proc.stdout, proc.stderr

    def exec_command(self, cmd, in_data=None, sudoable=False):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        return self._run(shlex.split(to_text(cmd, errors="surrogate_or_strict")), in_data=in_data)

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as handle:
            rc, _out, err = self._run(["/bin/sh", "-c", 'cat > "$1"', "sh", out_path], in_data=handle.read())
        if rc != 0:
            where = (out_path, self.get_option("remote_addr"), to_text(err))
            raise AnsibleError("could not write %s in %s: %s" % where)

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as handle:
            rc, _out, err = self._run(["cat", in_path], stdout=handle)
        if rc != 0:
            where = (in_path, self.get_option("remote_addr"), to_text(err))
            raise AnsibleError("could not read %s in %s: %s" % where)

    def close(self):
        super().close()
        self._connected = False
