"""One wrk run of the authenticated GET (bench/tools/wrk.lua prints a WRKJSON summary line): shared by the
rows that drive wrk themselves (workers.py, routes.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk.lua")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wrk(url: str, seconds: int, cookie: str, *, cpus: str, connections: str) -> dict | None:
    cmd = ["taskset", "-c", cpus, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
           "--timeout", "5s", "--latency", "-s", LUA, "-H", "Accept: text/html", "-H", f"Cookie: {cookie}", url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in p.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[8:])
    log(f"wrk gave no summary: {p.stdout[-300:]} {p.stderr[-300:]}")
    return None
