#!/usr/bin/python
# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: file_tree
short_description: Write a whole directory tree of text files in one task
version_added: 0.1.0
description:
  - Writes every file of O(files) under the directory O(path) in one task, with one owner for all of them and one
    mode (or a mode of the file's own), and creates the directories they need. A loop of
    M(ansible.builtin.copy) or M(ansible.builtin.template) costs a round trip to the host per file; this module
    costs one for the whole tree.
  - Every option is checked, the tree is read, and the new files are validated (O(validate)), before the first
    change. Bad input, something in the way, or a file its validator refuses, fails with a message that names the
    option or the O(files) entry and the path, and nothing is changed.
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
    (C(--diff)) shows contents, and a refusing validator's own output (see O(validate)).
author:
  - splitroute maintainers (@splitroute)
extends_documentation_fragment:
  - splitroute.vpn._common
attributes:
  check_mode:
    description:
      - Computes the same operations as a real run and reports them without applying any.
      - The O(validate) commands run in check mode too (on a private copy, see O(validate)), so a check run fails
        for a file that a real run would refuse; a validator that is not installed is a warning in check mode.
  diff_mode:
    description: One diff per changed name, bounded as the notes say; created files are not shown in full.
  platform:
    description: Linux (plain file system calls, and only the O(validate) commands run; no network state is read or
      changed by the module itself).
options:
  path:
    description:
      - The tree's root, an absolute directory, for example C(/usr/lib/splitroute).
      - Created when missing (its parent must exist; in check mode a missing parent is no error, the tree is
        reported as created, since an earlier task of the run may be what would make the parent).
      - C(/) itself, C(.), C(..) and empty components and control characters are refused; a trailing C(/) is
        dropped.
    type: str
    required: true
  files:
    description:
      - 'File name relative to O(path): content. Subdirectories are created as needed (C(pkg/mod.py) makes C(pkg)).'
      - 'The value is the content, or a dictionary C({content: ..., mode: "0600"}) for a file with a mode of its
        own, written as O(mode) is (a quoted octal string); without C(mode), or with C(mode) null, the file gets
        O(mode). Other keys are refused. So one tree can hold files of mode V(0644) and of mode V(0600).'
      - A name must not start with C(/), have C(.), C(..) or empty components (C(a//b), C(a/)) or control
        characters, and no component may be longer than 255 bytes. A name cannot be both a file and the directory
        of another name.
      - Each content must be a string (text); it is written as UTF-8, as it is (no newline is added). Numbers,
        booleans, lists and null are refused, not converted. Use V("") for an empty file.
      - Required with O(state=present); not used with O(state=absent).
    type: dict
  validate:
    description:
      - 'Glob pattern: command, to check new files before the first change, as the C(validate) option of
        M(ansible.builtin.template) does for one file. For example
        C({"*.nft": "nft -c -f %s", "dns/*.conf": "dnsmasq --test --conf-file=%s"}).'
      - 'A pattern matches the names of O(files) (relative to O(path)) with the rules of Python''s C(fnmatch),
        case sensitive, one C(/)-separated component at a time: C(*), C(?) and C([...]) never match a C(/), so
        C(*.nft) matches C(main.nft) but not C(sub/main.nft), and C(dns/*.conf) does not match C(dns/a/b.conf).
        C(*) matches names that start with a dot. C(**) is refused (write one pattern per depth), as are a leading
        C(/) and C(.), C(..) or empty components. A pattern that matches no name is not an error.'
      - Each command must contain C(%s) (it is refused otherwise). It is split into words as a POSIX shell would
        (Python's C(shlex)) and run without a shell and without expanding variables or C(~); every C(%s) is
        replaced by the path of the file to check. The program, the first word, is a name looked up in C(PATH)
        and C(/sbin), C(/usr/sbin), C(/usr/local/sbin), or an absolute path.
      - 'Which files: every file this task creates or whose content it changes, and that a pattern matches. A file
        that several patterns match is checked by all their commands (in the order of the patterns). A file whose
        content is already right is not checked again, also when its mode or owner changes: the content is what
        the validator judges.'
      - 'How: before anything changes, the whole tree as it will be (every file of O(files)) is written to a
        private temporary directory under Ansible''s remote temporary directory (files mode C(0600), directories
        C(0700)), at the same relative names, and removed before the task ends. Each command runs in the
        directory of its file''s copy, with C(%s) its absolute path. So paths relative to the working directory
        (nft''s C(include "./sets.inc")) read the tree''s new files, also the ones that are not validated
        themselves; absolute paths read the host as it is. Files under O(path) that are not in O(files) are not in
        the copy.'
      - 'A command that exits non-zero fails the task, and nothing is changed, also when other files passed: the
        message names the pattern, the command, the O(files) entry, the exit status and the first 1000
        characters of the validator''s stdout and of its stderr (which may quote lines of the file: do not
        validate secret files with a tool that echoes them). All the files are checked and every refusal is
        reported at once.'
      - A validator that is not installed fails the task, when a file needs it. In check mode it is a warning
        instead and those files are not validated (a new host in check mode has no packages yet); the validators
        that are installed still run in check mode, so C(--check) reports a bad file.
      - Not used with O(state=absent).
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
      - The mode of every file that does not give its own (see O(files)), an octal string of 3 or 4 digits such
        as V('0644') (quote it).
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

- name: Write the firewall and resolver configuration, each file checked before any is written
  splitroute.vpn.file_tree:
    path: /etc/example
    exclusive: true
    validate:
      "*.nft": nft -c -f %s
      dns/*.conf: dnsmasq --test --conf-file=%s
    files:
      main.nft: "{{ lookup('ansible.builtin.template', 'main.nft.j2') }}"
      sets.inc: "{{ lookup('ansible.builtin.template', 'sets.inc.j2') }}"  # main.nft has include "./sets.inc"
      dns/front.conf: "{{ lookup('ansible.builtin.template', 'front.conf.j2') }}"
      secrets/token:
        content: "{{ example_token }}"
        mode: "0600"
  register: example_config

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
validated:
  description:
    - The files checked by every O(validate) command that matches them (and accepted, or the task would have
      failed), in check mode too. Sorted. A file left out in check mode because its validator is not installed is
      not listed. Empty when nothing was to be written.
  returned: always
  type: list
  elements: str
  sample: [dns/front.conf, main.nft]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.splitroute.vpn.plugins.module_utils._argtypes import check_types
from ansible_collections.splitroute.vpn.plugins.module_utils._file_tree import FileTree


def main():
    argument_spec = dict(
        path=dict(type="str", required=True),
        files=dict(type="dict", no_log=True),  # not logged to the host's journal, see FileTree
        validate=dict(type="dict"),
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
