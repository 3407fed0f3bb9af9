#!/usr/bin/python3
"""Instantiates a SIPp scenario template for one test run.

    render.py TEMPLATE OUT [NAME=VALUE]...

A template is SIPp XML with two additions, so that the scenarios share
their call setup and checks instead of repeating them:
  @NAME@                          replaced by VALUE (may hold newlines)
  @NAME:-DEFAULT@                 the same, DEFAULT when NAME has no value
  @INCLUDE file NAME=VALUE ...@   (alone on a line) the text of
                                  inc/file.xml, rendered with these names
                                  added (values without spaces; a value
                                  @NAME@ is the including file's NAME)
A placeholder left without a value is an error, never silently kept.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = re.compile(
    r"^[ \t]*@INCLUDE (?P<inc>[\w-]+)(?P<args>(?: [A-Z_]+=\S*)*)@[ \t]*$"
    r"|@(?P<name>[A-Z][A-Z0-9_]*)(?::-(?P<default>[^@\n]*))?@", re.M)


def render(text, values, depth=0):
    """One pass: text put in by a value or an include is never rescanned."""
    if depth > 8:
        raise SystemExit("render.py: includes nested too deeply")

    def one(m):
        if m.group("inc"):
            local = dict(values)
            for pair in (m.group("args") or "").split():
                k, _, v = pair.partition("=")
                ref = re.fullmatch(r"@([A-Z][A-Z0-9_]*)@", v)
                if ref:  # FRAG=@FINAL@: the including file's value
                    if ref.group(1) not in values:
                        raise SystemExit("render.py: no value for %s" % v)
                    v = values[ref.group(1)]
                local[k] = v
            path = os.path.join(HERE, "inc", m.group("inc") + ".xml")
            with open(path) as f:
                return render(f.read(), local, depth + 1).rstrip("\n")
        if m.group("name") not in values:
            if m.group("default") is not None:
                return m.group("default")
            raise SystemExit("render.py: no value for @%s@" % m.group("name"))
        return values[m.group("name")]

    return TOKEN.sub(one, text)


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    values = {}
    for pair in argv[3:]:
        k, sep, v = pair.partition("=")
        if not sep:
            raise SystemExit("render.py: expected NAME=VALUE, got %r" % pair)
        values[k] = v
    with open(argv[1]) as f:
        out = render(f.read(), values)
    with open(argv[2], "w") as f:
        f.write(out)


if __name__ == "__main__":
    main(sys.argv)
