"""Row 7 of bench/run.sh: the authenticated GET through a gateway with 20 routes against the same gateway
with 1 route, in one run (issue 17: 20 routes may cost at most 5% more).

usage: python routes.py   (gateways with 1 and with 20 routes already answer on ROUTES1_PORT and ROUTES20_PORT,
pinned to SERVER_CPUS; this runs on WRK_CPUS)

Logs in once to each through the OP, checks the authenticated GET, then alternates wrk runs (REPEATS rounds:
1 route, 20 routes, ... each after a WARMUP s warm-up) so drift of the machine hits both alike; the median of
each by req/s goes to OUT/routes.json.
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
    urls = {1: f"http://{H}:{E['ROUTES1_PORT']}/", 20: f"http://{H}:{E['ROUTES20_PORT']}/"}

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
            assert r.status == 200, f"{n} routes: authenticated GET gave {r.status}"
    runs: dict[int, list[dict]] = {1: [], 20: []}
    for rep in range(int(E["REPEATS"])):
        for n, url in urls.items():
            if int(E["WARMUP"]):
                wrk(url, int(E["WARMUP"]), cookies[n])
            w = wrk(url, int(E["DURATION"]), cookies[n])
            if w is None:
                continue
            w["rps"] = w["requests"] / (w["duration_us"] / 1e6)
            runs[n].append(w)
            log(f"wrk {n} route(s) rep {rep + 1}: {w['rps']:.0f} req/s p50 {w['p50'] / 1000:.2f} ms "
                f"p99 {w['p99'] / 1000:.2f} ms non2xx3xx {w['err_status']}")
    result = []
    for n, rs in runs.items():
        rs.sort(key=lambda w: w["rps"])
        best = dict(rs[len(rs) // 2]) if rs else {"skipped": "wrk failed"}
        best.update(routes=n, rps_all=[round(w["rps"]) for w in rs])
        result.append(best)
    json.dump(result, open(os.path.join(OUT, "routes.json"), "w"), indent=1)
    return 0 if all(runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
