# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Refuse wrong types in module arguments before AnsibleModule's conversions hide them.

AnsibleModule turns a list or a dict given for a ``str`` option into its Python text
(``comment: [a]`` becomes the comment ``['a']``), a number given for a ``list`` option
into a list of one, and a string into a list split at commas. For the modules of this
collection those are mistakes, not shorthands: this check reads the arguments as the
controller sent them and names the option and its path (``groups[1].domains``).
Numbers given for ``str`` options and strings for ``int`` and ``bool`` ones (as ``-e``
gives them) stay what AnsibleModule makes of them.
"""

from __future__ import annotations

from ansible.module_utils import basic

_STRINGS = ("str", "path")


def _kind(value):
    return type(value).__name__


def _string_problem(value, what):
    if isinstance(value, (list, tuple, dict, bool)):
        return "%s: must be a string, not %s" % (what, _kind(value))
    return None


def _list_problem(value, what):
    if isinstance(value, (list, tuple)):
        return None
    hint = " (write [%r] for a list of one)" % value if isinstance(value, (str, int, float)) else ""
    return "%s: must be a list, not %s%s" % (what, _kind(value), hint)


def type_problems(spec, raw, where=""):
    """Messages for the values of RAW (the arguments as sent) that do not have the type SPEC declares."""
    problems = []
    if not isinstance(raw, dict):
        return problems
    for name, option in spec.items():
        keys = [name] + list(option.get("aliases") or [])
        key = next((k for k in keys if k in raw), None)
        if key is None or raw[key] is None:
            continue
        value, what = raw[key], where + key
        kind = option.get("type", "str")
        if kind in _STRINGS:
            problems.extend(filter(None, [_string_problem(value, what)]))
        elif kind == "dict":
            if not isinstance(value, dict):
                problems.append("%s: must be a dictionary, not %s" % (what, _kind(value)))
            elif option.get("options"):
                problems.extend(type_problems(option["options"], value, what + "."))
        elif kind == "list":
            problem = _list_problem(value, what)
            if problem:
                problems.append(problem)
                continue
            elements = option.get("elements")
            for index, item in enumerate(value):
                item_what = "%s[%d]" % (what, index)
                if item is None:
                    problems.append("%s: must not be empty (null)" % item_what)
                elif elements in _STRINGS:
                    problems.extend(filter(None, [_string_problem(item, item_what)]))
                elif elements == "dict":
                    if not isinstance(item, dict):
                        problems.append("%s: must be a dictionary, not %s" % (item_what, _kind(item)))
                    elif option.get("options"):
                        problems.extend(type_problems(option["options"], item, item_what + "."))
    return problems


def _has_secret(option):
    """Whether OPTION or one of its suboptions (at any depth) is no_log."""
    return bool(option.get("no_log")) or any(_has_secret(sub) for sub in (option.get("options") or {}).values())


def _leaves(value):
    """The texts AnsibleModule masks for a no_log VALUE: its strings and numbers, at any depth."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield str(value)


def _secrets(spec, raw):
    """The leaves of RAW's values for no_log options and suboptions of SPEC, at any depth."""
    for name, option in spec.items():
        for key in [name] + list(option.get("aliases") or []):
            if key not in raw:
                continue
            value = raw[key]
            if option.get("no_log"):
                yield from _leaves(value)
            elif option.get("options"):
                for item in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(item, dict):
                        yield from _secrets(option["options"], item)


def _loose(spec):
    """SPEC with every option raw and optional: a module that can start, to report the problems.
    An option with a no_log suboption is no_log as a whole (raw, it has no suboptions): the journal
    gets none of it; check_types() then masks only the secret parts in the result."""
    return {
        name: {"type": "raw", "aliases": list(option.get("aliases") or []), "no_log": _has_secret(option)}
        for name, option in spec.items()
    }


def check_types(argument_spec, add_file_common_args=False):
    """Check the arguments as sent against ARGUMENT_SPEC's types, before AnsibleModule(ARGUMENT_SPEC) is
    made: AnsibleModule would convert them or, for some, refuse them with a message that does not say
    which entry. Every wrong type fails at once, named with its path, before anything is looked at."""
    try:
        raw = basic._load_params()  # looked up here, so that ansible-test's stand-in (None) is used
    except Exception:  # pylint: disable=broad-except  # AnsibleModule reports unreadable arguments itself
        raw = None
    spec = dict(argument_spec)
    if add_file_common_args:
        spec.update(basic.FILE_COMMON_ARGUMENTS)
    problems = type_problems(spec, raw) if isinstance(raw, dict) else []
    if problems:
        loose = basic.AnsibleModule(argument_spec=_loose(spec), supports_check_mode=True)
        # An option that is secret only in parts (a list of dicts with a no_log key): mask those
        # parts, not every name and number of the option, which would garble the message.
        for name, option in spec.items():
            if _has_secret(option) and not option.get("no_log"):
                for key in [name] + list(option.get("aliases") or []):
                    loose.no_log_values.difference_update(_leaves(raw.get(key)))
        loose.no_log_values.update(_secrets(spec, raw))
        loose.fail_json(msg="invalid arguments, nothing was changed: %s" % "; ".join(problems))
