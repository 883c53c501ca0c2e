"""Rows 7 and 8 of bench/run.sh: the authenticated GET through two gateways that differ in one setting, in
one run: 1 route against 20 (row 7, issue 17: at most 5% more cost), the access log on against off (row 8,
issue 12: at most 10%).

usage: python pair.py NAME LABEL_A PORT_A LABEL_B PORT_B   (both gateways already answer, pinned to
SERVER_CPUS; this runs on WRK_CPUS)

Logs in once to each through the OP, checks the authenticated GET, then alternates wrk runs (REPEATS rounds:
A, B, ... each after a WARMUP s warm-up) so drift of the machine hits both alike; the median of each by req/s
goes to OUT/NAME.json as [{"label": ..., ...}, ...].
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import login  # noqa: E402
from wrkrun import log, wrk as run_wrk  # noqa: E402

E = os.environ
H, OUT = E["BIND_HOST"], E["OUT"]


def wrk(url: str, seconds: int, cookie: str) -> dict | None:
    return run_wrk(url, seconds, cookie, cpus=E["WRK_CPUS"], connections=E["CONNECTIONS"])


def main() -> int:
    op = f"http://{H}:{E['OP_PORT']}"
    name, label_a, port_a, label_b, port_b = sys.argv[1:6]
    urls = {label_a: f"http://{H}:{port_a}/", label_b: f"http://{H}:{port_b}/"}

    async def one(url: str) -> str:
        conn = login.aiohttp.TCPConnector()
        try:
            return (await login.login_once(conn, url, op))["cookie"]
        finally:
            await conn.close()

    cookies = {n: asyncio.run(one(url)) for n, url in urls.items()}
    for n, url in urls.items():
        req = urllib.request.Request(url, headers={"Cookie": cookies[n], "Accept": "text/html"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as r:
            assert r.status == 200, f"{n}: authenticated GET gave {r.status}"
    runs: dict[str, list[dict]] = {label: [] for label in urls}
    for rep in range(int(E["REPEATS"])):
        for n, url in urls.items():
            if int(E["WARMUP"]):
                wrk(url, int(E["WARMUP"]), cookies[n])
            w = wrk(url, int(E["DURATION"]), cookies[n])
            if w is None:
                continue
            w["rps"] = w["requests"] / (w["duration_us"] / 1e6)
            runs[n].append(w)
            log(f"wrk {name} {n} rep {rep + 1}: {w['rps']:.0f} req/s p50 {w['p50'] / 1000:.2f} ms "
                f"p99 {w['p99'] / 1000:.2f} ms non2xx3xx {w['err_status']}")
    result = []
    for n, rs in runs.items():
        rs.sort(key=lambda w: w["rps"])
        best = dict(rs[len(rs) // 2]) if rs else {"skipped": "wrk failed"}
        best.update(label=n, rps_all=[round(w["rps"]) for w in rs])
        result.append(best)
    json.dump(result, open(os.path.join(OUT, f"{name}.json"), "w"), indent=1)
    return 0 if all(runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
