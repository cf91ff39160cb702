#!/usr/bin/python
# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: wireguard_keys
short_description: Make sure WireGuard private keys exist on the host and return their public keys
version_added: 0.1.0
description:
  - Makes sure every interface of O(keys) has a private key file C(DIRECTORY/NAME.key) in O(directory), and
    returns the public keys, in one task. The file holds the key and a newline, as C(wg genkey > FILE) writes it,
    with mode C(0600), owner and group C(root).
  - A key given in O(keys[].private_key) is written when the file holds another key (or is missing). Without
    one, a key is made on the host when the file is missing (or empty), and an existing key is kept.
  - The keys are made and their public keys derived in pure Python (X25519, RFC 7748), as C(wg genkey) and
    C(wg pubkey) do, so the module works before wireguard-tools is installed.
  - When a key file gets a new key and its interface exists (in the network namespace the module runs in), the
    running interface takes the new key at once (C(wg set NAME private-key FILE)), as C(wg-quick) does when it
    starts. An interface that is not up reads the file when it starts.
  - Every option and every existing key file is checked before the first change. A file that holds something
    other than a key, a symlink or anything but a file at a key's place, a bad name or a bad key fails the task
    with a message that names the interface and the file, and nothing is changed. A key someone may depend on
    is never replaced unless the task gives another one.
  - No private key is ever in the result, the diff, a warning or a message, nor in the arguments Ansible shows
    (O(keys[].private_key) is C(no_log)).
  - Needs root (C(become=true)).
author:
  - splitroute maintainers (@splitroute)
extends_documentation_fragment:
  - splitroute.vpn._common
attributes:
  diff_mode:
    description: One line per change, by file name (created, updated, mode or owner fixed, loaded); never a key.
  platform:
    description: Linux (file system calls; C(wg) from wireguard-tools only to load a new key into an interface).
options:
  directory:
    description:
      - The directory of the key files, an absolute path.
      - Created with mode C(0700), owner and group C(root) when missing (its parent must exist); an existing one
        gets that mode and owner. A symlink there is refused.
    type: path
    default: /etc/wireguard
  keys:
    description:
      - The keys, one per interface. An empty list only makes sure of O(directory).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The interface name, which names the key file C(NAME.key).
          - 'Linux interface name rules: 1-15 characters of letters, digits, C(_ . : + -), not C(.) or C(..).'
          - A name given twice is refused.
        type: str
        required: true
      private_key:
        description:
          - The private key to install, in base64 as C(wg genkey) prints it (44 characters, no newline).
          - Omitted or V(""), a key is made on the host when the file is missing or empty, and an existing key
            is kept.
          - Never shown; a bad one fails with a message naming the interface, not the value.
        type: str
  state:
    description:
      - V(present) makes sure of the keys. Remove key files with M(ansible.builtin.file).
    type: str
    choices: [present]
    default: present
notes:
  - 'An existing key file must hold one key: 44 base64 characters, then nothing but white space (what C(wg)
    reads). A file that is empty (or white space only) holds no key and is treated as a missing one. Anything
    else fails the task, whatever O(keys[].private_key) says.'
  - A key file is written to a temporary file in O(directory) with mode C(0600) from its creation, flushed to
    disk and renamed over the old one, so a reader sees the old key or the new, never a part.
  - A file that already holds the right key with a wrong mode or owner keeps its content; only the mode and owner
    are fixed (the file is in RV(updated)).
  - If C(wg set) fails for an interface, the task fails after the files are written and names the interface;
    the next run sees the files right and does not load them again. Restart the interface, or run
    C(wg set NAME private-key FILE).
seealso:
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Keys of two tunnels, one given, one made on the host
  splitroute.vpn.wireguard_keys:
    keys:
      - name: wg0
        private_key: "{{ vault_wg0_private_key }}"
      - name: wg1
  register: tunnel_keys

- name: Publish the public keys for the peers
  ansible.builtin.set_fact:
    tunnel_public_keys: "{{ tunnel_keys.public_keys }}"

- name: The server's key in another directory
  splitroute.vpn.wireguard_keys:
    directory: /etc/example/wireguard
    keys:
      - name: wg-server
"""

RETURN = r"""
public_keys:
  description:
    - Interface name -> its public key (base64, as C(wg pubkey) prints it), in the order of O(keys).
    - In check mode, only the keys that are known without writing anything (existing files and given keys), not
      one that would be made.
  returned: always
  type: dict
  sample: {wg0: "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="}
created:
  description:
    - Interfaces whose key file was written with a key where it held none (missing or empty), or would be in
      check mode, in the order of O(keys).
  returned: always
  type: list
  elements: str
  sample: [wg1]
updated:
  description:
    - Interfaces whose key file's content (another given key, or the same key rewritten as key and newline),
      mode or owner was changed, or would be in check mode.
    - The directory's own mode and owner are not named here; when only they change, the result is changed and
      the diff says so.
  returned: always
  type: list
  elements: str
  sample: [wg0]
loaded:
  description:
    - Running interfaces that took their new key with C(wg set), or would in check mode.
  returned: always
  type: list
  elements: str
  sample: [wg0]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.splitroute.vpn.plugins.module_utils._argtypes import check_types
from ansible_collections.splitroute.vpn.plugins.module_utils._wg_keys import DIRECTORY, WireguardKeys


def main():
    argument_spec = dict(
        directory=dict(type="path", default=DIRECTORY),
        keys=dict(
            type="list",
            elements="dict",
            required=True,
            no_log=False,  # only its private_key is secret
            options=dict(
                name=dict(type="str", required=True),
                private_key=dict(type="str", no_log=True),
            ),
        ),
        state=dict(type="str", default="present", choices=["present"]),
    )
    check_types(argument_spec)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    WireguardKeys(module).run()


if __name__ == "__main__":
    main()
