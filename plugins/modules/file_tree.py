#!/usr/bin/python
# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: file_tree
short_description: Write a whole directory tree of text files in one task
version_added: 0.1.0
description:
  - Writes every file of O(files) under the directory O(path) in one task, with one mode and one owner for all of
    them, and creates the directories they need. A loop of M(ansible.builtin.copy) costs a round trip to the host
    per file; this module costs one for the whole tree.
  - Every option is checked, and the tree is read, before the first change. Bad input, or something in the way,
    fails with a message that names the option or the O(files) entry and the path, and nothing is changed.
  - 'Something in the way is: a symlink at O(path), at a directory a file needs or at a file''s own place (the
    module never writes through a symlink and never replaces one that is in the way, also not with O(exclusive));
    a file or anything else where a directory must go; a directory or anything else where a file must go.
    Remove it and run the task again. The directories above O(path) may be symlinks.'
  - Each file is written to a temporary file in its own directory, given its mode and owner, flushed to disk and
    renamed over the old one, so a reader sees the old content or the new, never a part. A file whose content,
    mode and owner are already right is not touched, nor is its modification time.
  - The same mode, owner and group are applied to every directory the files need, O(path) included.
  - 'With O(exclusive=true) the tree holds exactly these files: every other file and symlink under O(path) is
    removed, and every directory left empty by that. Anything inside a directory named C(__pycache__) is left
    alone: Python writes its bytecode there when the program runs, and removing it would make every run report a
    change (a C(__pycache__) therefore keeps its directory). Fifos, sockets and devices are not removed: the
    module fails and names them.'
  - The contents are never in the result, nor in the arguments Ansible shows with C(-vvv) (each content is
    replaced by its length there), nor in the arguments the module logs to the host's journal. Only the diff
    (C(--diff)) shows contents.
author:
  - splitroute maintainers (@splitroute)
extends_documentation_fragment:
  - splitroute.vpn._common
attributes:
  diff_mode:
    description: One diff per changed name, bounded as the notes say; created files are not shown in full.
  platform:
    description: Linux (plain file system calls; no network state is read or changed).
options:
  path:
    description:
      - The tree's root, an absolute directory, for example C(/usr/lib/splitroute).
      - Created when missing (its parent must exist). C(/) itself, C(.), C(..) and empty components and control
        characters are refused; a trailing C(/) is dropped.
    type: str
    required: true
  files:
    description:
      - 'File name relative to O(path): content. Subdirectories are created as needed (C(pkg/mod.py) makes C(pkg)).'
      - A name must not start with C(/), have C(.), C(..) or empty components (C(a//b), C(a/)) or control
        characters, and no component may be longer than 255 bytes. A name cannot be both a file and the directory
        of another name.
      - Each content must be a string (text); it is written as UTF-8, as it is (no newline is added). Numbers,
        booleans, lists and null are refused, not converted. Use V("") for an empty file.
      - Required with O(state=present); not used with O(state=absent).
    type: dict
  state:
    description:
      - V(present) writes the tree.
      - V(absent) removes O(path) and everything in it, whatever it holds. A missing O(path) is no change.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - Remove every file and symlink under O(path) that is not in O(files), and the directories that leaves
        empty. Anything inside a directory named C(__pycache__) is kept (see the description).
    type: bool
    default: false
  mode:
    description:
      - The mode of every file, an octal string of 3 or 4 digits such as V('0644') (quote it).
      - A number is refused, because YAML reads an unquoted C(0644) as the number 420 and C(644) as 644.
    type: raw
    default: "0644"
  directory_mode:
    description:
      - The mode of O(path) and of every directory the files need, as for O(mode).
      - Directories that only O(exclusive) keeps (because of a C(__pycache__)) are not changed.
    type: raw
    default: "0755"
  owner:
    description:
      - Owner of every file and directory of the tree, a user name or a numeric uid.
    type: str
    default: root
  group:
    description:
      - Group of every file and directory of the tree, a group name or a numeric gid.
    type: str
    default: root
notes:
  - 'In the results and the diff, names are relative to O(path): files as given in O(files), directories with a
    trailing C(/), O(path) itself as C(./).'
  - 'Diff mode: a changed file shows its old and new content (with its full path as header), unless either is
    larger than 104448 bytes (ansible-core''s default C(max_diff_size)) or the old content is not UTF-8, then one
    line says so. A created file is one line C(created PATH (N bytes, mode M)), not its content, so the first
    install does not print the whole tree. A changed mode or owner and every removed name are one line each.
    O(state=absent) lists what goes.'
  - The SELinux context and other file attributes are not managed.
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Install a Python package tree (one task, not one per file)
  splitroute.vpn.file_tree:
    path: /usr/lib/example
    exclusive: true
    files:
      example/__init__.py: ""
      example/cli.py: "{{ lookup('ansible.builtin.file', 'example/cli.py', rstrip=false) }}"
      example/util/__init__.py: ""
      example/util/text.py: "{{ lookup('ansible.builtin.file', 'example/util/text.py', rstrip=false) }}"
  register: example_tree

- name: Files readable by their service's group only
  splitroute.vpn.file_tree:
    path: /etc/example
    mode: "0640"
    directory_mode: "0750"
    group: example
    files:
      example.conf: |
        listen = 127.0.0.1
      conf.d/extra.conf: |
        # nothing yet

- name: Remove the tree
  splitroute.vpn.file_tree:
    path: /usr/lib/example
    state: absent
"""

RETURN = r"""
path:
  description:
    - The tree's root, without a trailing C(/).
    - As for other file modules, Ansible adds its C(state) (V(directory) or V(absent)) and, when it exists, its
      C(owner), C(group), C(mode) and C(size) to the result.
  returned: always
  type: str
  sample: /usr/lib/splitroute
created:
  description:
    - Names (relative to O(path), directories with a trailing C(/), O(path) as C(./)) that did not exist and were
      created, or would be in check mode. Sorted.
  returned: always
  type: list
  elements: str
  sample: [./, pkg/, pkg/__init__.py, pkg/mod.py]
updated:
  description: Names whose content, mode, owner or group was changed (or would be in check mode). Sorted.
  returned: always
  type: list
  elements: str
  sample: [pkg/mod.py]
removed:
  description:
    - Names that were removed (or would be in check mode), by O(exclusive) or by O(state=absent). Sorted.
  returned: always
  type: list
  elements: str
  sample: [old.py, oldpkg/, oldpkg/x.py]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.splitroute.vpn.plugins.module_utils._argtypes import check_types
from ansible_collections.splitroute.vpn.plugins.module_utils._file_tree import FileTree


def main():
    argument_spec = dict(
        path=dict(type="str", required=True),
        files=dict(type="dict", no_log=True),  # not logged to the host's journal, see FileTree
        state=dict(type="str", default="present", choices=["present", "absent"]),
        exclusive=dict(type="bool", default=False),
        mode=dict(type="raw", default="0644"),
        directory_mode=dict(type="raw", default="0755"),
        owner=dict(type="str", default="root"),
        group=dict(type="str", default="root"),
    )
    check_types(argument_spec)
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["files"])],
        supports_check_mode=True,
    )
    FileTree(module).run()


if __name__ == "__main__":
    main()
