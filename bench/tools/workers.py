"""Row 6 of bench/run.sh: one gateway started with --workers N on WORKERS_CPUS (both cores), wrk on the
same cores (the machine has two: load generator and servers share them).

usage: python workers.py WORKERS   (the gateway with that many workers is already answering on
WORKERS_GW_PORT; GATEWAY_TREE_PID and UPSTREAM_TREE_PID name the process trees to account CPU to)

Logs in once through the OP (bench/tools/login.py), checks the authenticated GET, then runs wrk
(authenticated small-body GET /, REPEATS x DURATION s after a WARMUP s warm-up each, median by req/s)
and appends the result to OUT/workers.json. Besides req/s and latency it records the peak RSS of the
gateway's process tree and how much CPU the gateway, the upstream nginx and wrk itself used per second
of wall time, so the table can show how the two cores were shared.
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import login  # noqa: E402
from proctree import kids_map, tree_rss_kb  # noqa: E402
from wrkrun import wrk as run_wrk  # noqa: E402

E = os.environ
H, OUT = E["BIND_HOST"], E["OUT"]
PORT = E["WORKERS_GW_PORT"]
URL = f"http://{H}:{PORT}/"
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tree(root: int) -> list[int]:
    kids = kids_map()
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, []))
    return out


def cpu_s(root: int) -> float:
    total = 0
    for p in tree(root):
        try:
            f = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        fields = f[f.rfind(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def wrk(seconds: int, cookie: str) -> dict | None:
    return run_wrk(URL, seconds, cookie, cpus=E["WORKERS_CPUS"], connections=E["CONNECTIONS"])


def main() -> int:
    workers = int(sys.argv[1])
    gw_pid, up_pid = int(E["GATEWAY_TREE_PID"]), int(E["UPSTREAM_TREE_PID"])
    op = f"http://{H}:{E['OP_PORT']}"

    async def one():
        conn = login.aiohttp.TCPConnector()
        try:
            return await login.login_once(conn, URL, op)
        finally:
            await conn.close()
    cookie = asyncio.run(one())["cookie"]
    import urllib.request
    req = urllib.request.Request(URL, headers={"Cookie": cookie, "Accept": "text/html"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as r:
        ok = r.status == 200
    log(f"workers={workers}: login ok, authenticated GET {'200' if ok else 'FAILED'}; gateway processes {len(tree(gw_pid))}")
    peak, sampling = [0], [True]

    def sampler():
        while sampling[0]:
            peak[0] = max(peak[0], tree_rss_kb(gw_pid))
            time.sleep(0.1)
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    runs = []
    for rep in range(int(E["REPEATS"])):
        if int(E["WARMUP"]):
            wrk(int(E["WARMUP"]), cookie)
        g0, u0, w0, t0 = cpu_s(gw_pid), cpu_s(up_pid), resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
        w = wrk(int(E["DURATION"]), cookie)
        g1, u1, w1, t1 = cpu_s(gw_pid), cpu_s(up_pid), resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
        if w is None:
            continue
        wall = t1 - t0
        w.update(rps=w["requests"] / (w["duration_us"] / 1e6),
                 cpu_gateway=round((g1 - g0) / wall, 2), cpu_upstream=round((u1 - u0) / wall, 2),
                 cpu_wrk=round((w1.ru_utime + w1.ru_stime - w0.ru_utime - w0.ru_stime) / wall, 2))
        runs.append(w)
        log(f"wrk workers={workers} rep {rep + 1}: {w['rps']:.0f} req/s p50 {w['p50'] / 1000:.2f} ms p99 {w['p99'] / 1000:.2f} ms "
            f"non2xx3xx {w['err_status']}; CPU s/s gateway {w['cpu_gateway']} upstream {w['cpu_upstream']} wrk {w['cpu_wrk']}")
    sampling[0] = False
    th.join()
    runs.sort(key=lambda w: w["rps"])
    best = dict(runs[len(runs) // 2]) if runs else {"skipped": "wrk failed"}
    best.update(workers=workers, cpus=E["WORKERS_CPUS"], rps_all=[round(w["rps"]) for w in runs],
                rss_peak_kb=peak[0], authed_ok=ok)
    path = os.path.join(OUT, "workers.json")
    data = json.load(open(path)) if os.path.exists(path) else []
    data.append(best)
    json.dump(data, open(path, "w"), indent=1)
    return 0 if runs and ok else 1


if __name__ == "__main__":
    sys.exit(main())
