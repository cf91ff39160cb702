"""Every program that runs on this machine comes from a package `make deps` installs.

The collector reads what the test suites, the lab's scripts and playbooks, the benchmarks and
scripts/ run on the machine itself: argv lists handed to subprocess and to the files' own wrappers
(found by following where a wrapper's *cmd ends up), `ip netns exec NS CMD` and the like, `sh -c`
strings, the command words of the shell scripts and the Makefile, and the command/shell tasks of
plays on localhost or delegated to it. Commands inside the lab hosts (`podman exec HOST CMD`,
plays on the lab hosts, testinfra's host.run) are not collected: lab/image.sh puts those in the image.

Each collected command is then one of: a command of a package in scripts/host-packages.txt (the
list bootstrap.sh installs), a program of the venv, a shell builtin or keyword, or a function of
the project's shell scripts. The list is checked the other way too: each command it names is
installed by that package (`dpkg -S` of the resolved path), and is used somewhere.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE_LIST = ROOT / "scripts" / "host-packages.txt"
VENV_BIN = Path(sys.executable).parent

# Where the machine's commands are written down.
PY_DIRS = ("tests", "lab", "benchmarks", "scripts", "molecule", "plugins/modules", "plugins/module_utils")
SHELL_FILES = ("*.sh", "lab/*.sh", "scripts/*.sh", "benchmarks/*.sh", "tests/**/*.sh", "molecule/**/*.sh", ".ci/run")
YAML_DIRS = ("lab/playbooks", "molecule", "tests/integration", "playbooks", "roles")

# Programs of the venv (requirements-dev.txt), not of a Debian package.
VENV_COMMANDS = {
    "ansible", "ansible-doc", "ansible-galaxy", "ansible-inventory", "ansible-lint", "ansible-playbook", "ansible-test",
    "molecule", "pip", "pytest", "python", "ruff", "yamllint",
}  # fmt: skip
# Shell builtins and keywords (checked with bash's `type -t`).
SHELL_BUILTINS = {
    ":", "[[", "case", "cd", "command", "continue", "echo", "exec", "exit", "export", "for", "local", "mapfile",
    "printf", "pwd", "read", "return", "set", "shift", "source", "trap", "true", "umask",
}  # fmt: skip
# Run by a collected command rather than by the project's own files: command -> (who runs it, why).
IMPLICIT = {
    "shellcheck": ("ansible-test", "ansible-test sanity's shellcheck test (scripts/sanity.sh)"),
}
# Argv heads the collector cannot read by itself: (file, source) -> the command it is, or None
# when it is not a program of this machine. Each entry must still be met (no stale entries).
UNRESOLVED = {
    ("plugins/module_utils/_host_lists.py", '["nft", "-c", "-f", "-"] if check else ["nft", "-f", "-"]'): "nft",
    (
        "plugins/module_utils/_host_lists.py",
        '_releases.dnsmasq_test_argv("dnsmasq", path, servers_file=servers_file)',
    ): "dnsmasq",
    ("tests/conftest.py", "python or sys.executable"):
        "python",  # run_module: the venv's python, or /usr/bin/python3 from PYTHONS (python3)
    ("tests/unit/plugins/modules/test_netns_veth.py", "str(wrapper)"):
        None,  # a script the test writes that execs /usr/bin/python3
    ("plugins/module_utils/_dnsmasq.py", "binary"):
        "dnsmasq",  # dnsmasq_binary, default dnsmasq, looked up with get_bin_path
    ("plugins/module_utils/_dnsmasq.py", "dnsmasq_test_argv(binary, tmp, servers_file=self.layout == FRONT)"):
        "dnsmasq",  # _releases.dnsmasq_test_argv of dnsmasq_binary (default dnsmasq, get_bin_path)
    ("tests/unit/plugins/module_utils/test_releases.py", "argv"):
        ("dnsmasq", "nft", "unshare"),  # run()'s callers: dnsmasq --version/--test, nft --version, unshare
    ("plugins/module_utils/_nft.py", "self.binary"):
        "nft",  # get_bin_path("nft")
    ("plugins/module_utils/_dnsmasq.py", "self.binary"):
        "nft",  # get_bin_path("nft")
    ("plugins/module_utils/_host_health.py", "list(argv)"):
        ("ip", "systemctl"),  # _run's callers: ip route, systemctl kill
    ("plugins/module_utils/_wg_keys.py", "wg"):
        "wg",  # get_bin_path("wg"), to load a new key into a running interface
    ("tests/unit/test_ee_files.py", "str(galaxy)"):
        "ansible-galaxy",  # the venv's, next to sys.executable
    ("tests/unit/test_host_commands.py", "command"):
        None,  # shutil.which of each listed command
    ("tests/unit/test_host_commands.py", "script"):
        None,  # bash -c "type -t" of SHELL_BUILTINS
    ("lab/nsenter.py", "argv"):
        None,  # a command in a lab host (nsenter enters its container)
    ("tests/unit/plugins/filter/test_gateway_templates.py", '[arg % path if "%s" in arg else arg for arg in program]'):
        ("nft", "dnsmasq"),  # the validators of the rendered templates, from its parametrize list
    ("plugins/module_utils/_file_tree.py", "check.argv[0]"):
        ("nft", "dnsmasq", "cat", "false", "test", "sh"),  # validate's programs: the roles' and the tests'
    ("plugins/module_utils/_file_tree.py", "program"):
        ("nft", "dnsmasq", "cat", "false", "test", "sh"),  # the same, looked up with get_bin_path
    ("plugins/module_utils/_systemd.py", "systemctl"):
        None,  # show_argv's: get_bin_path("systemctl"), see MANAGED_HOST_ONLY
    ("plugins/module_utils/_systemd.py", "self.systemctl"):
        None,  # get_bin_path("systemctl"), see MANAGED_HOST_ONLY
}  # fmt: skip
# Programs a module looks up and runs on the managed host only, never on this machine: command -> why.
MANAGED_HOST_ONLY = {
    "systemctl": "splitroute.vpn.systemd_units on a host run by systemd: its tests run it in a container "
    "(tests/integration/test_systemd_units.py); on this machine the module stops at /run/systemd/system",
}
# Jinja expressions that stand for a command in a task.
JINJA_COMMANDS = {"ansible_playbook_python": "python"}

VARARG = object()  # a wrapper's *cmd in command position


class Unresolved:
    """An argv element the collector cannot read (a variable, a call), by its source text."""

    def __init__(self, source):
        self.source = source

    def __repr__(self):
        return "Unresolved(%r)" % self.source


# --- package list -------------------------------------------------------------------------------


def read_package_list(text):
    """{package: [commands]} and {package: reason} from host-packages.txt's text."""
    commands, reasons = {}, {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, *rest = line.split()
        assert re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", name), "host-packages.txt:%d: bad package %r" % (number, name)
        assert name not in commands and name not in reasons, "host-packages.txt:%d: %s twice" % (number, name)
        assert rest, "host-packages.txt:%d: %s needs its commands or `- REASON`" % (number, name)
        if rest[0] == "-":
            assert len(rest) > 1, "host-packages.txt:%d: %s: `-` needs a reason" % (number, name)
            reasons[name] = " ".join(rest[1:])
        else:
            commands[name] = rest
    return commands, reasons


# --- generic argv rules ---------------------------------------------------------------------------

# Options that take a value, per program that runs another program.
OPTION_VALUES = {
    "nsenter": {"-t", "--target", "-S", "--setuid", "-G", "--setgid", "-w", "--wd", "-r", "--root"},
    "unshare": {"--propagation", "--setgroups", "--map-user", "--map-group"},
    "timeout": {"-s", "--signal", "-k", "--kill-after"},
    "env": {"-u", "--unset", "-C", "--chdir"},
    "xargs": {"-I", "-n", "-P", "-d", "-a", "-s", "-L"},
}


def _skip_options(words, start, with_value):
    i = start
    while i < len(words) and isinstance(words[i], str) and words[i].startswith("-") and words[i] != "--":
        i += 2 if words[i] in with_value else 1
    if i < len(words) and words[i] == "--":
        i += 1
    return i


def argv_commands(words):
    """What an argv runs on this machine: ("cmd", name), ("shell", script), VARARG or Unresolved."""
    if not words:
        return
    head = words[0]
    if head is VARARG or isinstance(head, Unresolved):
        yield head
        return
    if not isinstance(head, str) or not head:
        yield Unresolved(repr(head))
        return
    yield ("cmd", head)
    base = os.path.basename(head)
    rest = list(words[1:])
    if base == "ip" and rest[:2] == ["netns", "exec"]:
        yield from argv_commands(rest[3:])
    elif base in ("nsenter", "unshare", "timeout", "env", "xargs", "nice", "setsid", "sudo", "exec"):
        i = _skip_options(rest, 0, OPTION_VALUES.get(base, set()))
        if base == "timeout":
            i += 1  # the duration
        if base == "env":
            while i < len(rest) and isinstance(rest[i], str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", rest[i]):
                i += 1
        yield from argv_commands(rest[i:])
    elif base == "command":
        if rest[:1] in (["-v"], ["-V"]):
            if len(rest) > 1:
                yield ("cmd", rest[1])
        else:
            yield from argv_commands(rest)
    elif base == "flock":
        i = _skip_options(rest, 0, {"-w", "--timeout", "-E", "--conflict-exit-code"})
        if len(rest) > i + 1 and rest[i + 1] not in ("-c", "--command"):
            yield from argv_commands(rest[i + 1 :])  # flock FILE CMD...
    elif base in ("sh", "bash"):
        i = 0
        while i < len(rest) and isinstance(rest[i], str) and rest[i].startswith("-") and not rest[i].startswith("--"):
            flags = rest[i][1:]
            i += 1
            if "o" in flags:
                i += 1  # -o OPTION
            if "c" in flags:
                if i < len(rest):
                    script = rest[i]
                    yield ("shell", script) if isinstance(script, str) else Unresolved(getattr(script, "source", "?"))
                return
    # podman exec/run, chroot, ssh: the rest runs elsewhere; python -c: Python code.


# --- shell -----------------------------------------------------------------------------------------

RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time", "in"}
OPERATORS = ("&&", "||", ";;", ";", "|&", "|", "&", "(", ")")
REDIRECTION = re.compile(r"[0-9]*(?:>>|>&|<&|>\||<>|>|<)|&>>?")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\[[^]]*\])?\+?=")


class ShellScanner:
    """The simple commands of a shell script: [(line, words)], words with their quotes removed.

    Command substitutions and process substitutions are scanned as scripts of their own (the
    word holding one reads `$(...)`), heredoc bodies and comments are skipped, and the words of
    `[[ ]]`, `(( ))`, `for NAME in WORDS` and case patterns are not commands. Enough for the
    project's scripts; the collector's tests below show what it reads."""

    def __init__(self, text, line=1):
        self.text, self.pos, self.line = text, 0, line
        self.commands, self.functions = [], set()

    # low level
    def peek(self, n=1):
        return self.text[self.pos : self.pos + n]

    def advance(self, n=1):
        chunk = self.text[self.pos : self.pos + n]
        self.line += chunk.count("\n")
        self.pos += len(chunk)
        return chunk

    def at_end(self):
        return self.pos >= len(self.text)

    def skip_quoted(self, quote):
        """After an opening quote: skip to its end (nested substitutions in double quotes too)."""
        while not self.at_end() and self.peek() != quote:
            if quote == '"' and self.peek() == "\\":
                self.advance(2)
            elif quote == '"' and self.peek(2) == "$(":
                self.advance(2)
                self.skip_balanced()
            else:
                self.advance()
        self.advance()

    def skip_balanced(self):
        """After an opening `(`: skip to the matching `)`; return the text inside."""
        start, depth = self.pos, 1
        while not self.at_end():
            c = self.peek()
            if c == "\\":
                self.advance(2)
            elif c in "'\"":
                self.advance()
                self.skip_quoted(c)
            elif c == "#" and (self.pos == 0 or self.text[self.pos - 1] in " \t\n("):
                while not self.at_end() and self.peek() != "\n":
                    self.advance()
            elif c == "(":
                depth += 1
                self.advance()
            elif c == ")":
                depth -= 1
                if depth == 0:
                    inside = self.text[start : self.pos]
                    self.advance()
                    return inside
                self.advance()
            else:
                self.advance()
        return self.text[start:]

    def substitution(self):
        """After `$(` or `<(`: scan what it runs."""
        inner = ShellScanner("", self.line)
        inner.text = self.skip_balanced()
        inner.scan()
        self.commands += inner.commands
        self.functions |= inner.functions

    def dollar(self):
        """At a `$`: consume one expansion; return its text."""
        self.advance()
        if self.peek(2) == "((":
            self.advance()
            self.skip_balanced()
            return "$((...))"
        if self.peek() == "(":
            self.advance()
            self.substitution()
            return "$(...)"
        if self.peek() == "{":
            start = self.pos
            while not self.at_end() and self.peek() != "}":
                self.advance()
            self.advance()
            return "$" + self.text[start : self.pos]
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*|[0-9#?$!@*-]", self.text[self.pos :])
        return "$" + self.advance(len(match.group(0))) if match else "$"

    def word(self):
        out = ""
        while not self.at_end():
            c = self.peek()
            if c in " \t\n;&|()<>":
                if c == "(" and ASSIGNMENT.match(out) and out.endswith("="):  # NAME=( array )
                    self.advance()
                    out += "(%s)" % self.skip_balanced()
                    continue
                break
            if c == "\\":
                if self.peek(2) == "\\\n":
                    self.advance(2)
                else:
                    out += self.advance(2)[1:]
            elif c == "'":
                self.advance()
                start = self.pos
                self.skip_quoted("'")
                out += self.text[start : self.pos - 1]
            elif c == '"':
                self.advance()
                while not self.at_end() and self.peek() != '"':
                    if self.peek() == "\\":
                        out += self.advance(2)[1:]
                    elif self.peek() == "$":
                        out += self.dollar()
                    else:
                        out += self.advance()
                self.advance()
            elif c == "$":
                out += self.dollar()
            else:
                out += self.advance()
        return out

    def tokens(self):
        """(line, kind, text), kind one of word, op (\\n included), redirect."""
        heredocs = []
        while not self.at_end():
            c, line = self.peek(), self.line
            rest = self.text[self.pos :]
            if c in " \t":
                self.advance()
            elif rest.startswith("\\\n"):
                self.advance(2)
            elif c == "#":
                while not self.at_end() and self.peek() != "\n":
                    self.advance()
            elif c == "\n":
                self.advance()
                for delimiter, strip in heredocs:  # the bodies start on the next line
                    while not self.at_end():
                        end = self.text.find("\n", self.pos)
                        end = len(self.text) if end < 0 else end
                        body = self.text[self.pos : end]
                        self.advance(end - self.pos + 1)
                        if (body.lstrip("\t") if strip else body) == delimiter:
                            break
                heredocs = []
                yield line, "op", "\n"
            elif rest.startswith("(("):
                self.advance(2)
                self.skip_balanced()
                self.advance()
                yield line, "word", "((...))"
            elif rest.startswith(("<(", ">(")):
                self.advance(2)
                self.substitution()
                yield line, "word", "<(...)"
            elif rest.startswith("<<<"):
                self.advance(3)
                yield line, "redirect", "<<<"
            elif rest.startswith("<<"):
                self.advance(2)
                strip = self.peek() == "-"
                if strip:
                    self.advance()
                while self.peek() in " \t":
                    self.advance()
                heredocs.append((self.word(), strip))
            elif (c in "<>&" or c.isdigit()) and REDIRECTION.match(rest) and not rest.startswith("&&"):
                if c.isdigit() and not re.match(r"[0-9]+[<>]", rest):
                    yield line, "word", self.word()
                    continue
                yield line, "redirect", self.advance(REDIRECTION.match(rest).end())
            elif c in ";&|()":
                op = next((o for o in OPERATORS if rest.startswith(o)), c)
                self.advance(len(op))
                yield line, "op", op
            else:
                yield line, "word", self.word()

    def scan(self):
        tokens = list(self.tokens())
        words, line, skip_target, case_pattern = [], None, False, False
        i = 0
        while i < len(tokens):
            tline, kind, text = tokens[i]
            i += 1
            if kind == "redirect":
                skip_target = True
                continue
            if kind == "word" and skip_target:
                skip_target = False
                continue
            skip_target = False
            if case_pattern:
                if kind == "op" and text == ")":
                    case_pattern = False
                elif kind == "word" and text == "esac":
                    case_pattern = False
                continue
            if words[:1] == ["[["] and "]]" not in words:
                words.append(text)
                continue
            if kind == "op":
                if text == "(" and len(words) == 1 and i < len(tokens) and tokens[i][2] == ")":
                    self.functions.add(words[0])  # NAME() { ...
                    words, i = [], i + 1
                    continue
                self.finish(words, line)
                words, line = [], None
                if text == ";;":
                    case_pattern = True
                continue
            if not words and text in RESERVED | {"esac"}:
                continue
            if words[:1] == ["case"] and text == "in":
                self.finish(words, line)
                words, line, case_pattern = [], None, True
                continue
            if line is None:
                line = tline
            words.append(text)
        self.finish(words, line)
        return self.commands

    def finish(self, words, line):
        while words and ASSIGNMENT.match(words[0]):
            words = words[1:]  # NAME=value before the command, or alone
        if not words:
            return
        if words[0] == "((...))":
            return  # arithmetic
        if words[0] in ("[[", "for", "case"):
            words = words[:1]  # the rest are not commands
        self.commands.append((line, words))


def shell_commands(text, line=1):
    """([(line, command)], functions defined) of a shell script's text."""
    scanner = ShellScanner(text, line)
    found = []
    for wline, words in scanner.scan():
        for item in argv_commands(words):
            if isinstance(item, tuple) and item[0] == "shell":
                found += shell_commands(item[1], wline)[0]
            elif isinstance(item, tuple):
                found.append((wline, item[1]))
            else:
                found.append((wline, Unresolved(" ".join(words))))
    return found, scanner.functions


# --- Python ----------------------------------------------------------------------------------------

RUNNERS = {"run", "Popen", "call", "check_call", "check_output"}  # subprocess.X(argv, ...)
WHICH = {"which", "get_bin_path"}  # shutil.which(NAME), module.get_bin_path(NAME): a program looked for


class PythonFile:
    """The commands one Python file runs, following its own wrappers and argv builders."""

    def __init__(self, source, imported_wrappers=None):
        self.tree = ast.parse(source)
        self.source = source
        self.lines = source.encode().splitlines()
        self.parent = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        self.functions = [n for n in ast.walk(self.tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        # (name, is_method) -> number of positional arguments before *cmd
        self.wrappers = dict(imported_wrappers or {})
        self.builders = set()  # functions whose result is used as an argv
        self.found = []  # (line, command or Unresolved)
        self.fork, self.choice = 1, 0  # a loop variable met in an argv: how many values, which one
        self.local_playbooks = set()  # path ends of the playbooks run with `-c local`

    # scopes
    def scope_of(self, node):
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node
        return None

    def is_method(self, func):
        return isinstance(self.parent.get(func), ast.ClassDef)

    def params(self, func):
        names = [a.arg for a in func.args.posonlyargs + func.args.args]
        return names[1:] if self.is_method(func) and names[:1] in (["self"], ["cls"]) else names

    def assigned(self, name, scope):
        """The first value assigned to NAME in SCOPE (not in nested functions), else outside it."""
        while True:
            body = scope.body if scope is not None else self.tree.body
            for node in self.walk_scope(body):
                if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                    return node.value, scope
            if scope is None:
                return None, None
            scope = self.scope_of(scope)

    def walk_scope(self, body):
        todo = list(body)
        while todo:
            node = todo.pop(0)
            yield node
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                todo[0:0] = list(ast.iter_child_nodes(node))

    def local_function(self, call):
        """The file's function a call calls, and whether it is reached as a method."""
        func = call.func
        if isinstance(func, ast.Name):
            name, method = func.id, False
        elif isinstance(func, ast.Attribute) and getattr(func.value, "id", None) not in ("subprocess", "shutil", "os"):
            name, method = func.attr, True
        else:
            return None, None
        for candidate in self.functions:
            if candidate.name == name and self.is_method(candidate) == method:
                return candidate, method
        if (name, method) in self.wrappers:
            return "imported", method
        return None, None

    @staticmethod
    def runs_local(argv):
        words = [w for w in argv if isinstance(w, str)]
        pairs = zip(words, words[1:])
        return "--connection=local" in words or any(a in ("-c", "--connection") and b == "local" for a, b in pairs)

    def path_text(self, element):
        """The path an argv element names, as far as its constants tell: ROOT / "a" / "b.yml" -> a/b.yml."""
        if isinstance(element, str):
            return element if element.endswith((".yml", ".yaml")) else None
        if not isinstance(element, Unresolved):
            return None
        match = re.fullmatch(r"(?:str\()?([A-Za-z_][A-Za-z0-9_]*)\)?", element.source)
        value = self.assigned(match.group(1), None)[0] if match else None
        if value is None:
            return None
        constants = [n for n in ast.walk(value) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        parts = [n.value for n in sorted(constants, key=lambda n: (n.lineno, n.col_offset))]
        return "/".join(parts) if parts and parts[-1].endswith((".yml", ".yaml")) else None

    def loop_values(self, name, scope, use):
        """The values NAME takes in the `for` around USE, over a literal container (or X.items()/values())."""
        node = use
        while node in self.parent and node is not scope:
            node = self.parent[node]
            if not isinstance(node, ast.For):
                continue
            index = None
            if isinstance(node.target, ast.Name) and node.target.id == name:
                index = -1
            elif isinstance(node.target, ast.Tuple):
                names = [getattr(t, "id", None) for t in node.target.elts]
                index = names.index(name) if name in names else None
            if index is None:
                continue
            container, method = node.iter, None
            if isinstance(container, ast.Call) and isinstance(container.func, ast.Attribute):
                container, method = container.func.value, container.func.attr
            if isinstance(container, ast.Name):
                container, _where = self.assigned(container.id, scope)
            if isinstance(container, ast.Dict):
                if method == "items":
                    return container.values if index == 1 else container.keys
                return container.values if method == "values" else container.keys
            if isinstance(container, (ast.List, ast.Tuple, ast.Set)):
                if index == -1:
                    return list(container.elts)
                return [e.elts[index] for e in container.elts if isinstance(e, ast.Tuple)]
        return None

    # values
    def text(self, node):
        """The source of a node (ast.get_source_segment, without splitting the file each time)."""
        if not hasattr(node, "end_lineno") or node.end_lineno is None:
            return ast.dump(node)
        lines = self.lines[node.lineno - 1 : node.end_lineno]
        if len(lines) == 1:
            return lines[0][node.col_offset : node.end_col_offset].decode()
        return b"\n".join([lines[0][node.col_offset :], *lines[1:-1], lines[-1][: node.end_col_offset]]).decode()

    def item(self, node, scope):
        """One argv element."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Attribute) and self.text(node) == "sys.executable":
            return "python"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):  # "exec 3<>/dev/tcp/%s/%d" % (...)
            left = self.item(node.left, scope)
            if isinstance(left, str):
                return left
        if isinstance(node, ast.Name):
            func = scope
            if func is not None and func.args.vararg is not None and func.args.vararg.arg == node.id:
                return VARARG
            value, _where = self.assigned(node.id, scope)
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
        return Unresolved(self.text(node))

    def elements(self, node, scope, depth=0):
        """An argv expression as a list of elements."""
        if depth > 8:
            return [Unresolved(self.text(node))]
        if isinstance(node, (ast.List, ast.Tuple)):
            out = []
            for elt in node.elts:
                if isinstance(elt, ast.Starred):
                    out += self.elements(elt.value, scope, depth + 1)
                else:
                    out.append(self.item(elt, scope))
            return out
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.elements(node.left, scope, depth + 1) + self.elements(node.right, scope, depth + 1)
        if isinstance(node, ast.Name):
            single = self.item(node, scope)
            if single is VARARG:
                return [VARARG]
            values = self.loop_values(node.id, scope, node)
            value, where = self.assigned(node.id, scope)
            if value is not None and not isinstance(value, ast.Constant) and not values:
                return self.elements(value, where, depth + 1)
            if values:  # for cmd in ([...], [...]): the sink is read once per value
                self.fork = len(values)
                return self.elements(values[min(self.choice, len(values) - 1)], scope, depth + 1)
            return [single]
        if isinstance(node, ast.Call):
            func, method = self.local_function(node)
            if func is not None:
                skip = self.wrappers.get((node.func.attr if method else node.func.id, method))
                if func != "imported":
                    self.builders.add(func)
                if skip is not None:
                    return self.elements(ast.List(elts=node.args[skip:]), scope, depth + 1)
                if func != "imported":
                    returns = [n.value for n in self.walk_scope(func.body) if isinstance(n, ast.Return) and n.value]
                    if returns:
                        out = []
                        for element in self.elements(returns[0], func, depth + 1):
                            if element is VARARG:  # the builder's *cmd: this call's arguments
                                rest = node.args[len(self.params(func)) :]
                                out += self.elements(ast.List(elts=rest), scope, depth + 1)
                            else:
                                out.append(element)
                        return out
        return [Unresolved(self.text(node))]

    # sinks
    def sinks(self):
        """(line, scope, argv elements or ("which", item)), once per value of a loop variable in it."""
        for line, scope, kind, arg in self.readers():
            self.fork, self.choice = 1, 0
            yield line, scope, self.read(kind, arg, scope)
            for choice in range(1, self.fork):
                self.choice = choice
                yield line, scope, self.read(kind, arg, scope)
            self.choice = 0

    def read(self, kind, arg, scope):
        if kind == "which":
            return ("which", self.item(arg, scope))
        if kind == "shell":
            return ["sh", "-c", self.item(arg, scope)]
        return self.elements(arg, scope)

    def readers(self):
        """(line, scope, kind, expression) of each place an argv is handed over."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Return) and node.value is not None and self.scope_of(node) in self.builders:
                yield node.lineno, self.scope_of(node), "argv", node.value
            if not isinstance(node, ast.Call):
                continue
            scope, func = self.scope_of(node), node.func
            attr = func.attr if isinstance(func, ast.Attribute) else None
            owner = func.value.id if attr and isinstance(func.value, ast.Name) else None
            if node.args and ((attr in RUNNERS and owner == "subprocess") or attr == "run_command"):
                yield node.lineno, scope, "argv", node.args[0]
            elif node.args and attr == "system" and owner == "os":
                yield node.lineno, scope, "shell", node.args[0]
            elif node.args and attr in WHICH:
                yield node.lineno, scope, "which", node.args[0]
            else:
                target, method = self.local_function(node)
                skip = self.wrappers.get((func.attr if method else getattr(func, "id", None), method))
                if target is not None and skip is not None:
                    yield node.lineno, scope, "argv", ast.List(elts=node.args[skip:])

    def collect(self):
        for _round in range(10):
            before = (dict(self.wrappers), set(self.builders))
            found = []
            for line, scope, argv in self.sinks():
                if isinstance(argv, tuple):
                    found.append((line, argv[1]))
                    continue
                for item in argv_commands(argv):
                    if item is VARARG:
                        if scope is not None:
                            key = (scope.name, self.is_method(scope))
                            self.wrappers.setdefault(key, len(self.params(scope)))
                    elif isinstance(item, Unresolved):
                        found.append((line, item))
                    elif item[0] == "shell":
                        found += shell_commands(item[1], line)[0]
                    else:
                        found.append((line, item[1]))
                if "ansible-playbook" in argv and self.runs_local(argv):
                    self.local_playbooks |= {self.path_text(e) for e in argv[1:] if self.path_text(e)}
            # a fixture that returns one of its nested wrappers is a wrapper too (tests/conftest.py nsexec)
            for func in self.functions:
                for node in self.walk_scope(func.body):
                    if isinstance(node, ast.Return) and isinstance(node.value, ast.Name):
                        for inner in self.functions:
                            skip = self.wrappers.get((inner.name, False))
                            if inner.name == node.value.id and self.scope_of(inner) is func and skip is not None:
                                self.wrappers.setdefault((func.name, False), skip)
            self.found = found
            if (self.wrappers, self.builders) == before:
                break
        return self.found


def python_commands(source, imported_wrappers=None):
    """([(line, command or Unresolved)], the file's wrappers) of a Python source."""
    parsed = PythonFile(source, imported_wrappers)
    found = parsed.collect()
    own = {k: v for k, v in parsed.wrappers.items() if k not in (imported_wrappers or {})}
    return found, own, parsed.local_playbooks


# --- playbooks -------------------------------------------------------------------------------------

LOCAL_HOSTS = {"localhost", "127.0.0.1"}
COMMAND_MODULES = {"ansible.builtin.command", "command", "ansible.builtin.shell", "shell"}
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers", "block", "rescue", "always")


class LineLoader(yaml.SafeLoader):
    """Mappings remember their line (key __line__)."""

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping


def jinja_command(text):
    """The command a task's templated first word stands for."""
    expr = text.strip()[2:].split("}}", 1)[0].strip()
    if expr in JINJA_COMMANDS:
        return JINJA_COMMANDS[expr]
    match = re.match(r"^\[\s*'([^']+)'", expr)  # {{ ['podman', ...] + ... }}
    return match.group(1) if match else Unresolved(text)


def task_commands(task, play_vars):
    """[(line, command)] of one command/shell task."""
    module = next((m for m in COMMAND_MODULES if m in task), None)
    if module is None:
        return []
    line, args = task["__line__"], task[module]
    shell = module.endswith("shell")
    if isinstance(args, dict):
        args = args.get("cmd", args.get("argv", args.get("_raw_params")))
    if shell:  # a template's {{ ... }} is one word
        return shell_commands(re.sub(r"\{\{.*?\}\}", "JINJA", str(args), flags=re.S), line)[0]
    if isinstance(args, str) and args.strip().startswith("{{"):
        item = re.fullmatch(r"\{\{\s*item\.(\w+)\s*\}\}", args.strip())
        loop = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", str(task.get("loop", "")).strip())
        if item and loop and isinstance(play_vars.get(loop.group(1)), list):  # argv: "{{ item.argv }}"
            found = []
            for entry in play_vars[loop.group(1)]:
                found += [(line, c[1]) for c in argv_commands(entry[item.group(1)]) if isinstance(c, tuple)]
            return found
        head = args.split("}}", 1)[0] + "}}"
        words = [jinja_command(head)]
    elif isinstance(args, str):
        words = args.split()
        if words and words[0].startswith("{{"):
            words = [jinja_command(args)] + words[1:]
    else:
        words = [str(w) for w in args]
    out = []
    for item in argv_commands(words):
        out.append((line, item[1] if isinstance(item, tuple) else item))
    return out


def playbook_commands(data, local_file=False):
    """[(line, command)] of the tasks that run on this machine: in plays on localhost (or a file
    run with `-c local`), or delegated to localhost. Task files (roles, includes) count only
    where they delegate to localhost."""
    found = []

    def tasks(items, local, play_vars):
        for task in items or []:
            if not isinstance(task, dict):
                continue
            delegate = task.get("delegate_to")
            here = str(delegate) in LOCAL_HOSTS if delegate is not None else local
            for key in TASK_LISTS:
                if key in task:
                    tasks(task[key], here, play_vars)
            if here:
                found.extend(task_commands(task, play_vars))

    if not isinstance(data, list):
        return found
    for entry in data:
        if not isinstance(entry, dict):
            continue
        if "hosts" in entry:
            local = local_file or str(entry["hosts"]) in LOCAL_HOSTS or entry.get("connection") == "local"
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                tasks(entry.get(key), local, entry.get("vars") or {})
        else:
            tasks([entry], False, {})
    return found


# --- the whole project -----------------------------------------------------------------------------


def project_files():
    """(python files, shell files, YAML files), relative to ROOT."""
    python = sorted({p for d in PY_DIRS for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts})
    shell = sorted({p for pattern in SHELL_FILES for p in ROOT.glob(pattern) if p.is_file()})
    playbooks = sorted({p for d in YAML_DIRS for p in (ROOT / d).rglob("*.yml")})
    return python, shell, playbooks


def makefile_commands(text):
    """[(line, command)] of the Makefile's recipes."""
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.startswith("\t"):
            found += shell_commands(raw.lstrip("\t").lstrip("@-"), number)[0]
    return found


def collect():
    """{command: [where]}, [(where, Unresolved)] and the shell functions, for the whole project."""
    python, shell, playbooks = project_files()
    used, unresolved, functions, local_playbooks = defaultdict(list), [], set(), set()

    def add(path, found):
        rel = path.relative_to(ROOT).as_posix()
        for line, command in found:
            if isinstance(command, Unresolved):
                unresolved.append((rel, line, command.source))
            else:
                used[command].append("%s:%d" % (rel, line))

    conftest_wrappers = {}
    conftest = ROOT / "tests" / "conftest.py"
    if conftest.is_file():
        conftest_wrappers = python_commands(conftest.read_text())[1]
    for path in python:
        imported = conftest_wrappers if path.is_relative_to(ROOT / "tests") else None
        found, _wrappers, local = python_commands(path.read_text(), imported)
        add(path, found)
        local_playbooks |= local
    for path in shell:
        found, defined = shell_commands(path.read_text())
        add(path, found)
        functions |= defined
    add(ROOT / "Makefile", makefile_commands((ROOT / "Makefile").read_text()))
    for path in playbooks:
        rel = path.relative_to(ROOT).as_posix()
        local = any(rel.endswith(end) for end in local_playbooks)
        add(path, playbook_commands(yaml.load(path.read_text(), Loader=LineLoader), local))
    return dict(used), unresolved, functions


# --- what this machine has -------------------------------------------------------------------------

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VENV_PATH = re.compile(r"^(?:\.venv|\$\{?S?VENV\}?|\.cache/sanity-venv)/bin/([^/]+)$")


def installed_packages():
    """{package: (status, priority, essential, [packages it depends on])} of dpkg's database."""
    fields = "${Package}\t${db:Status-Status}\t${Priority}\t${Essential}\t${Depends}, ${Pre-Depends}\n"
    out = subprocess.run(["dpkg-query", "-W", "-f", fields], capture_output=True, text=True, check=True).stdout
    packages = {}
    for line in out.splitlines():
        name, status, priority, essential, depends = line.split("\t")
        names = [re.split(r"[\s(:]", alt.strip())[0] for dep in depends.split(",") for alt in dep.split("|")]
        packages[name] = (status, priority, essential, [n for n in names if n])
    return packages


def dependency_closure(package, packages):
    seen, todo = set(), [package]
    while todo:
        name = todo.pop()
        if name in seen or name not in packages:
            continue
        seen.add(name)
        todo += packages[name][3]
    return seen


def owners(paths):
    """{path: package} by `dpkg -S` (one call), trying the /usr-merged twins of each path too."""
    candidates = set()
    for path in paths:
        candidates |= {path, re.sub(r"^/usr(?=/s?bin/)", "", path)}
    proc = subprocess.run(["dpkg", "-S", *sorted(candidates)], capture_output=True, text=True, check=False)
    found = {}
    for line in proc.stdout.splitlines():
        if line.startswith("diversion "):
            continue
        package, _sep, path = line.partition(": ")
        found[path] = package.split(",")[0].split(":")[0]
    result = {}
    for path in paths:
        for candidate in (path, re.sub(r"^/usr(?=/s?bin/)", "", path)):
            if candidate in found:
                result[path] = found[candidate]
                break
    return result


# --- tests of the collector ------------------------------------------------------------------------


def test_collector_reads_python_argvs_wrappers_and_builders():
    source = textwrap.dedent(
        """
        import shutil, subprocess, sys
        PLAY = ROOT / "playbooks" / "x.yml"
        SCRIPT = "mount -t tmpfs none /x && exec sleep infinity"
        TABLE = {"a": ["date", "+%s"], "b": ["nft", "list", "ruleset"]}

        def sh(*cmd, check=True):
            return subprocess.run(cmd, check=check)

        def nsx(ns, *cmd):
            return sh("ip", "netns", "exec", ns, *cmd)

        class Box:
            def argv(self, *cmd):
                return ["nsenter", "-t", str(self.pid), "-m", "-n", *cmd]

            def run(self, *cmd):
                return subprocess.run(self.argv(*cmd))

        def fixture():
            def _run(*cmd):
                return subprocess.run(["ip", "netns", "exec", "ns", *cmd])
            return _run

        def test(box, host, fixture):
            nsx("ns", "curl", "-s", "http://x/")
            box.run("wireguard-go", "-f", "wg0")
            subprocess.Popen(box.argv("unshare", "--mount", "--propagation", "private", "sh", "-c", SCRIPT))
            fixture("dig", "+short")
            for cmd in (["tcpdump", "-c1"], ["conntrack", "-L"]):
                box.run(*cmd)
            for key, argv in TABLE.items():
                sh(*argv)
            cmd = ["timeout", "5", "env", "A=b", "wg", "show"]
            cmd += ["--extra"]
            subprocess.run(cmd)
            subprocess.run(["podman", "exec", "host", "inside-the-host"])
            subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(PLAY)])
            subprocess.check_call([sys.executable, "-m", "pip"])
            subprocess.run([str(x), "y"])
            host.check_output("curl inside a lab host")  # testinfra: inside the host
            shutil.which("dnsperf")
        """
    )
    found, wrappers, local = python_commands(source)
    commands = {c for _line, c in found if isinstance(c, str)}
    assert commands == {
        "ip", "curl", "nsenter", "wireguard-go", "unshare", "sh", "mount", "exec", "sleep", "dig", "tcpdump",
        "conntrack", "date", "nft", "timeout", "env", "wg", "podman", "ansible-playbook", "python", "dnsperf",
    }  # fmt: skip
    assert [c.source for _line, c in found if isinstance(c, Unresolved)] == ["str(x)"]
    assert wrappers == {("sh", False): 0, ("nsx", False): 1, ("argv", True): 0, ("run", True): 0,
                        ("_run", False): 0, ("fixture", False): 0}  # fmt: skip
    assert local == {"playbooks/x.yml"}
    # conftest's fixtures reach the test files
    found, _wrappers, _local = python_commands("def test(fixture):\n    fixture('dnsmasq', '--test')\n", wrappers)
    assert [c for _line, c in found] == ["dnsmasq"]


def test_collector_reads_shell_scripts():
    script = textwrap.dedent(
        """\
        #!/usr/bin/env bash
        set -euo pipefail
        ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
        PACKAGES=(
          # the project's own comment, with an apostrophe
          nftables iproute2
        )
        helper() { local x; printf '%s\\n' "$x"; }
        if [[ ! -x $VENV/bin/python || "$(readlink -f x)" != y ]]; then
          VAR=1 "$VENV/bin/pip" install -q 2>&1 | { grep -v WARNING || true; }
        fi
        exec 9>"/run/lock/x"
        flock --nonblock 9 || flock 9
        command -v make >/dev/null || apt-get install make
        case "${1:-}" in
          up) helper ;;
          --ref) timeout 5 debootstrap x; exit 0 ;;
        esac
        for f in a b c; do tar -C x -c . | podman import - ref; done
        ((n > 0)) && chroot "$ROOT" systemctl disable x
        podman exec host curl inside
        while read -r old; do echo "$old"; done < <(sha256sum file)
        cat <<'EOF'
        not-a-command here
        EOF
        mapfile -t found < <(git ls-files)
        """
    )
    found, functions = shell_commands(script)
    commands = {c for _line, c in found}
    assert commands == {
        "set", "cd", "dirname", "pwd", "local", "printf", "[[", "readlink", "$VENV/bin/pip", "grep", "true", "exec",
        "flock", "command", "make", "apt-get", "case", "helper", "timeout", "debootstrap", "exit", "for", "tar",
        "podman", "chroot", "read", "echo", "sha256sum", "cat", "mapfile", "git",
    }  # fmt: skip
    assert functions == {"helper"}
    assert dict((c, line) for line, c in found)["git"] == 26


def test_collector_reads_local_tasks_of_playbooks():
    plays = yaml.load(
        textwrap.dedent(
            """
            - hosts: localhost
              vars:
                cmds: [{argv: [date]}, {argv: [ip, link]}]
              tasks:
                - ansible.builtin.command: "{{ ansible_playbook_python }} check.py"
                - ansible.builtin.command: {argv: [podman, exec, host, inside]}
                - ansible.builtin.command: {argv: "{{ item.argv }}"}
                  loop: "{{ cmds }}"
                - ansible.builtin.command: "{{ ['podman', 'network'] + item }}"
                - ansible.builtin.shell: "umask 077 && qrencode {{ x | quote }} && mv a b"
                - ansible.builtin.command: on-the-lab-host
                  delegate_to: router
            - hosts: lab
              tasks:
                - ansible.builtin.command: on-a-lab-host
                - block:
                    - ansible.builtin.command: {argv: [zbarimg, x]}
                      delegate_to: localhost
            """
        ),
        Loader=LineLoader,
    )
    commands = [c for _line, c in playbook_commands(plays)]
    assert commands == ["python", "podman", "date", "ip", "podman", "umask", "qrencode", "mv", "zbarimg"]
    assert [c for _l, c in playbook_commands(plays[1:], local_file=True)] == ["on-a-lab-host", "zbarimg"]


def test_collector_finds_the_known_commands(collected):
    """The collector over the project finds what it is known to run, from each kind of file."""
    used, _unresolved, functions = collected
    expected = {
        "wireguard-go": "tests/integration/test_status_play.py",
        "nsenter": "tests/unit/plugins/filter/fixtures/status/capture.py",
        "dnsperf": "benchmarks/bench_client_resolver.py",
        "curl": "tests/integration/test_seed000_play.py",
        "debootstrap": "lab/image.sh",
        "podman": "lab/playbooks/create.yml",
        "qrencode": "roles/gateway/tasks/peers.yml",
        "nft": "plugins/module_utils/_nft.py",
        "date": "playbooks/status.yml",
        "make": ".ci/run",
        "pytest": "Makefile",
    }
    for command, where in expected.items():
        assert any(w.startswith(where + ":") for w in used.get(command, [])), (command, where, used.get(command))
    assert "srlab_lock" in functions


# --- the checks ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def collected():
    return collect()


@pytest.fixture(scope="module")
def package_list():
    return read_package_list(PACKAGE_LIST.read_text())


def resolved_use(used, unresolved):
    """Collected commands, with the unresolved argv heads replaced by what UNRESOLVED says."""
    used = {k: list(v) for k, v in used.items()}
    for rel, line, source in unresolved:
        commands = UNRESOLVED.get((rel, source)) or ()
        for command in (commands,) if isinstance(commands, str) else commands:
            used.setdefault(command, []).append("%s:%d" % (rel, line))
    return used


def test_unresolved_argv_heads_are_known(collected):
    _used, unresolved, _functions = collected
    met = {(rel, source) for rel, _line, source in unresolved}
    unknown = sorted("%s:%d: %s" % item for item in unresolved if (item[0], item[2]) not in UNRESOLVED)
    assert not unknown, "the collector cannot tell which program these run; say it in UNRESOLVED:\n  " + "\n  ".join(
        unknown
    )
    stale = sorted("%s: %s" % key for key in UNRESOLVED if key not in met)
    assert not stale, "UNRESOLVED entries no file has any more: %s" % stale


def test_every_command_run_on_this_machine_has_its_package(collected, package_list):
    used, unresolved, functions = collected
    commands, _reasons = package_list
    mapped = {c for listed in commands.values() for c in listed}
    missing = {}
    for command, where in sorted(resolved_use(used, unresolved).items()):
        venv = VENV_PATH.match(command)
        if venv:
            if venv.group(1) not in VENV_COMMANDS:
                missing[command] = where
            continue
        if os.path.basename(command) in mapped or command in VENV_COMMANDS | SHELL_BUILTINS | functions:
            continue
        if command in MANAGED_HOST_ONLY:
            continue
        missing[command] = where
    stale = sorted(set(MANAGED_HOST_ONLY) - set(resolved_use(used, unresolved)))
    assert not stale, "MANAGED_HOST_ONLY commands nothing looks up any more: %s" % stale
    assert not missing, (
        "these commands run on this machine, but no package in scripts/host-packages.txt provides them "
        "(add the package there, or classify the command in tests/unit/test_host_commands.py):\n"
        + "\n".join("  %s: %s" % (c, ", ".join(w[:3]) + (" ..." if len(w) > 3 else "")) for c, w in missing.items())
    )


def test_listed_commands_are_used(collected, package_list):
    used, unresolved, _functions = collected
    commands, _reasons = package_list
    names = {os.path.basename(c) for c in resolved_use(used, unresolved)}
    names |= {c for c, (by, _why) in IMPLICIT.items() if by in names}
    unused = sorted("%s (%s)" % (c, p) for p, listed in commands.items() for c in listed if c not in names)
    assert not unused, "scripts/host-packages.txt lists commands nothing runs: %s" % ", ".join(unused)
    for command, (by, _why) in IMPLICIT.items():
        assert by in names, "%s is run by %s, which nothing runs any more" % (command, by)
        assert any(command in listed for listed in commands.values()) or any(
            command in why for why in _reasons.values()
        ), command


def test_listed_packages_install_their_commands(package_list):
    """Each listed command resolves on this machine to a file of its package (or of a package it
    pulls in: python3 -> python3-minimal); each listed package is installed (`make deps`)."""
    commands, reasons = package_list
    packages = installed_packages()
    not_installed = sorted(p for p in [*commands, *reasons] if packages.get(p, ("",))[0] != "installed")
    assert not not_installed, "not installed (run `make deps`): %s" % not_installed
    paths = {}
    for package, listed in commands.items():
        for command in listed:
            found = shutil.which(command, path=SYSTEM_PATH)
            assert found, "%s (%s): not found in %s" % (command, package, SYSTEM_PATH)
            paths[(package, command)] = sorted({found, os.path.realpath(found)})
    owner = owners([p for ps in paths.values() for p in ps])
    wrong = []
    for (package, command), candidates in sorted(paths.items()):
        closure = dependency_closure(package, packages)
        if not any(owner.get(path) in closure for path in candidates):
            wrong.append(
                "%s: %s belongs to %s, not %s" % (command, candidates, [owner.get(p) for p in candidates], package)
            )
    assert not wrong, "host-packages.txt names the wrong package:\n  " + "\n  ".join(wrong)


def test_venv_commands_and_builtins_are_what_they_are_said_to_be(collected):
    used, unresolved, _functions = collected
    names = {VENV_PATH.sub(r"\1", c) for c in resolved_use(used, unresolved)}
    missing = sorted(c for c in VENV_COMMANDS if not (VENV_BIN / c).exists())
    assert not missing, "not in the venv (%s): %s" % (VENV_BIN, missing)
    assert not sorted(VENV_COMMANDS - names), "VENV_COMMANDS nothing runs: %s" % sorted(VENV_COMMANDS - names)
    script = "for w in %s; do printf '%%s %%s\\n' \"$w\" \"$(type -t -- \"$w\")\"; done" % " ".join(
        "'%s'" % w for w in sorted(SHELL_BUILTINS)
    )
    kinds = dict(line.split(" ", 1) for line in subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines())  # fmt: skip
    wrong = sorted(w for w, kind in kinds.items() if kind not in ("builtin", "keyword"))
    assert not wrong, "not bash builtins or keywords: %s" % wrong
    assert not sorted(SHELL_BUILTINS - names), "SHELL_BUILTINS nothing runs: %s" % sorted(SHELL_BUILTINS - names)


def test_bootstrap_installs_the_list(package_list):
    """scripts/bootstrap.sh reads its packages from host-packages.txt: `--list` prints them."""
    commands, reasons = package_list
    out = subprocess.run(["bash", str(ROOT / "scripts" / "bootstrap.sh"), "--list"], capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    assert out == [*read_order(PACKAGE_LIST.read_text())]
    assert set(out) == set(commands) | set(reasons)


def read_order(text):
    return [line.split()[0] for line in (raw.split("#", 1)[0].strip() for raw in text.splitlines()) if line]
