"""Strict reading of Prometheus' text format (node-exporter's textfile collector), shared by
the status filter's unit tests and the status playbook's integration test."""

from __future__ import annotations

import re

# Stricter than the format, which allows any other character raw in a label value: no control
# character at all (a textfile that holds one is a bug in what wrote it).
_VALUE = r'(?:[^"\\\x00-\x1f\x7f-\x9f\u2028\u2029]|\\[\\"n])*'
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="%s",?)*)\} (-?\d+)$' % _VALUE)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(%s)"' % _VALUE)


def parse_metrics(text):
    """Strict reading of the text format: HELP and TYPE once, before a family's samples; no duplicate
    series; no control character but the newline that ends a line."""
    assert text.endswith("\n")
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", text), "a control character: %r" % text
    samples, declared = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in declared, "family %s declared twice" % name
            declared[name] = None
            continue
        if line.startswith("# TYPE "):
            _hash, _type, name, kind = line.split(" ")
            assert name in declared and declared[name] is None and kind in ("gauge", "counter"), line
            declared[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, "not a sample line: %r" % line
        assert declared.get(match.group(1)), "sample before its TYPE: %r" % line
        key = (match.group(1), frozenset(LABEL.findall(match.group(2))))
        assert key not in samples, "duplicate series %r" % line
        samples[key] = int(match.group(3))
    return samples
