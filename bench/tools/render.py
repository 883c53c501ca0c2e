"""Replace every @NAME@ in a template with NAME from the environment (or NAME=VALUE arguments).

usage: python render.py TEMPLATE OUTPUT [NAME=VALUE ...]   (fails on a placeholder without a value)
"""
import os
import re
import sys

src, dst, *pairs = sys.argv[1:]
values = {**os.environ, **dict(p.split("=", 1) for p in pairs)}
missing: set[str] = set()


def sub(m: re.Match) -> str:
    if m.group(1) not in values:
        missing.add(m.group(1))
        return m.group(0)
    return values[m.group(1)]


text = re.sub(r"@([A-Z][A-Z0-9_]*)@", sub, open(src, encoding="utf-8").read())
if missing:
    sys.exit(f"render.py: {src}: no value for {', '.join(sorted(missing))}")
open(dst, "w", encoding="utf-8").write(text)
