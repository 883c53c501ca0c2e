"""Row 5 of bench/run.sh: N concurrent pending headless (BankID) transactions in one gateway worker.

Acts as N browsers. Each POSTs /_auth/headless/start (JSON, same-origin Origin) and keeps its own binding
cookie; then every transaction's status is asked once per poll interval, the N transactions spread
evenly over the interval, for --intervals intervals. Nobody ever scans a QR code: every transaction stays
pending at the dev IdP (bench/tools/headless_idp.py, which counts the polls it gets).

Measured:
  memory   the gateway's RSS (process tree, sampled every 0.2 s): a baseline after a warm-up, then the
           peak from the first start to the last status call; (peak - baseline) / N per transaction;
  polls    provider polls per transaction per interval over the status window, counted at the dev
           IdP's token endpoint and by the gateway's gateway_idp_polls_total; the ideal is 1.00. The
           dev IdP also reports the gap between two polls of one transaction and any slow_down;
  driver   status-call latency, how late the calls went out against their slot, and errors.

usage: python headless_load.py --gateway URL --idp URL --metrics URL --gateway-pid PID --out JSON
                               [--n 10000] [--interval 5] [--intervals 3] [--start-concurrency 64]
Requests go to loopback only; everything is bounded by --n, --intervals and timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time

import aiohttp

from proctree import tree_rss_kb

PROVIDER = "se-bankid"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process (gateway --workers 1 and the dev IdP are one process each)."""
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def pct(v: list[float], p: float) -> float | None:
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


class Tx:
    __slots__ = ("cookie", "status")

    def __init__(self, cookie: tuple[str, str]) -> None:
        self.cookie = cookie
        self.status = "pending"


async def metric_polls(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url + "/metrics") as r:
        text = await r.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'gateway_idp_polls_total\{([^}]*)\} ([0-9.e+]+)', line)
        if m and f'provider="{PROVIDER}"' in m.group(1):
            res = re.search(r'result="([^"]*)"', m.group(1))
            out[res.group(1) if res else "?"] = float(m.group(2))
        m = re.match(r'gateway_poll_transactions_pending(\{[^}]*\})? ([0-9.e+]+)', line)
        if m:
            out["_pending_gauge"] = float(m.group(2))
    return out


def tx_cookie(resp: aiohttp.ClientResponse) -> tuple[str, str] | None:
    for name, morsel in resp.cookies.items():
        if name.endswith("_tx") and morsel.value:
            return name, morsel.value
    return None


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--idp", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--gateway-pid", type=int, required=True)
    ap.add_argument("--idp-pid", type=int, default=0, help="to account the dev IdP's CPU time as well")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--intervals", type=int, default=3)
    ap.add_argument("--start-concurrency", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=50)
    a = ap.parse_args()
    gw, N, I, K = a.gateway.rstrip("/"), a.n, a.interval, a.intervals
    res: dict = {"n": N, "interval_s": I, "intervals": K, "errors": {}}
    errors: dict[str, int] = res["errors"]

    def err(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    rss: list[tuple[float, int]] = []
    sampling = True

    async def sampler() -> None:
        while sampling:
            rss.append((time.time(), tree_rss_kb(a.gateway_pid)))
            await asyncio.sleep(0.2)

    conn = aiohttp.TCPConnector(limit=512, force_close=False)
    http = aiohttp.ClientSession(connector=conn, cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=60))
    start_body = json.dumps({"provider": PROVIDER, "rd": "/"})
    start_headers = {"Origin": gw, "Content-Type": "application/json", "Accept": "application/json"}

    async def start_one(lat: list[float]) -> Tx | None:
        t = time.perf_counter()
        try:
            async with http.post(gw + "/_auth/headless/start", data=start_body, headers=start_headers) as r:
                body = await r.json(content_type=None)
                c = tx_cookie(r)
                if r.status != 200 or body.get("status") != "pending" or c is None:
                    err(f"start http {r.status} {body.get('status') or body.get('error')}")
                    return None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
            err(f"start {type(e).__name__}")
            return None
        lat.append(time.perf_counter() - t)
        return Tx(c)

    async def start_many(n: int, conc: int, lat: list[float]) -> list[Tx]:
        sem = asyncio.Semaphore(conc)

        async def one():
            async with sem:
                return await start_one(lat)
        return [t for t in await asyncio.gather(*(one() for _ in range(n))) if t is not None]

    try:
        samp = asyncio.ensure_future(sampler())
        # warm-up: some transactions started and cancelled, so that the baseline includes imports, pools, ...
        warm = await start_many(a.warmup, 8, [])
        for tx in warm:
            async with http.post(gw + "/_auth/headless/cancel", headers={"Origin": gw, "Cookie": "=".join(tx.cookie)}) as r:
                await r.read()
        await asyncio.sleep(2)
        base = [tree_rss_kb(a.gateway_pid) for _ in range(5)]
        res["rss_baseline_kb"] = int(statistics.median(base))
        log(f"baseline RSS {res['rss_baseline_kb'] / 1024:.1f} MB after {len(warm)} warm-up transactions; starting {N}")
        errors.clear()

        t_start = time.time()
        lat: list[float] = []
        txs = await start_many(N, a.start_concurrency, lat)
        t_started = time.time()
        res.update(started=len(txs), start_s=round(t_started - t_start, 2),
                   starts_per_s=round(len(txs) / (t_started - t_start), 1),
                   start_ms_p50=round(1000 * pct(lat, 50), 1) if lat else None,
                   start_ms_p99=round(1000 * pct(lat, 99), 1) if lat else None,
                   rss_after_start_kb=tree_rss_kb(a.gateway_pid))
        log(f"started {len(txs)}/{N} in {res['start_s']} s ({res['starts_per_s']}/s, p50 {res['start_ms_p50']} ms); "
            f"RSS {res['rss_after_start_kb'] / 1024:.1f} MB; errors {errors}")
        # status window: transaction i asks at T0 + k*I + i*I/n, k = 0..K-1. T0 is one interval after the
        # last start, so every transaction is due at its first slot (the gateway polls no sooner than an
        # interval after the start).
        n = len(txs)
        T0 = max(time.time() + 1.0, t_started + I + 0.5)
        m0 = await metric_polls(http, a.metrics)
        c0 = {k: cpu_s(p) for k, p in (("gateway", a.gateway_pid), ("idp", a.idp_pid)) if p}
        slat: list[float] = []
        late: list[float] = []
        statuses: dict[str, int] = {}

        async def status_loop(i: int, tx: Tx) -> None:
            for k in range(K):
                slot = T0 + k * I + i * I / n
                d = slot - time.time()
                if d > 0:
                    await asyncio.sleep(d)
                if tx.status != "pending":
                    return
                t = time.time()
                late.append(t - slot)
                try:
                    async with http.get(gw + "/_auth/headless/status",
                                        headers={"Cookie": "=".join(tx.cookie), "Accept": "application/json"}) as r:
                        body = await r.json(content_type=None)
                        slat.append(time.time() - t)
                        st = body.get("status") if r.status == 200 else f"http {r.status}"
                        statuses[st] = statuses.get(st, 0) + 1
                        if r.status != 200:
                            err(f"status http {r.status} {body.get('error', '')}")
                            tx.status = "gone"
                            return
                        tx.status = st
                        c = tx_cookie(r)
                        if c is not None:
                            tx.cookie = c
                        elif st == "pending":
                            err("status: pending without a new cookie")
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
                    err(f"status {type(e).__name__}")

        log(f"status window: {n} transactions x {K} intervals of {I:g} s")
        await asyncio.gather(*(status_loop(i, tx) for i, tx in enumerate(txs)))
        T1 = time.time()
        res["cpu_s_per_s"] = {k: round((cpu_s(p) - c0[k]) / (T1 - T0), 2)
                              for k, p in (("gateway", a.gateway_pid), ("idp", a.idp_pid)) if p}
        sampling = False
        await samp
        m1 = await metric_polls(http, a.metrics)
        async with http.get(a.idp.rstrip("/") + "/_bench/polls", params={"since": str(T0 - 0.5), "until": str(T1 + 0.5)}) as r:
            idp = await r.json()
        per_interval = []
        for k in range(K):
            async with http.get(a.idp.rstrip("/") + "/_bench/polls",
                                params={"since": str(T0 + k * I), "until": str(T0 + (k + 1) * I)}) as r:
                per_interval.append((await r.json())["polls"])
        gw_polls = {k: m1.get(k, 0) - m0.get(k, 0) for k in set(m0) | set(m1) if not k.startswith("_")}
        denom = n * K
        peak = max((kb for t, kb in rss if t >= t_start), default=0)
        res.update(
            window_s=round(T1 - T0, 2), status_calls=len(slat), status_answers=statuses,
            status_ms_p50=round(1000 * pct(slat, 50), 1) if slat else None,
            status_ms_p99=round(1000 * pct(slat, 99), 1) if slat else None,
            status_late_ms_p50=round(1000 * pct(late, 50), 1) if late else None,
            status_late_ms_p99=round(1000 * pct(late, 99), 1) if late else None,
            status_calls_per_s=round(len(slat) / (T1 - T0), 1),
            idp=idp, idp_polls_per_interval=per_interval, gateway_polls=gw_polls,
            pending_gauge=m1.get("_pending_gauge"),
            polls_per_tx_interval_idp=round(idp["polls"] / denom, 3) if denom else None,
            polls_per_tx_interval_metric=round(sum(gw_polls.values()) / denom, 3) if denom else None,
            polls_per_status_call=round(idp["polls"] / len(slat), 3) if slat else None,
            # the same per interval of wall time: differs when the status calls could not keep their schedule
            polls_per_tx_wall_interval=round(idp["polls"] / (n * (T1 - T0) / I), 3) if n else None,
            rss_peak_kb=peak,
            rss_per_tx_kb=round((peak - res["rss_baseline_kb"]) / n, 2) if n else None,
            rss_samples=len(rss),
        )
        log(f"polls/tx/interval: IdP {res['polls_per_tx_interval_idp']} (per interval {per_interval}, "
            f"per-tx histogram {idp['polls_per_tx_histogram']}, gap {idp['gap_s']}, answers {idp['answers']}); "
            f"gateway metric {res['polls_per_tx_interval_metric']} {gw_polls}")
        log(f"RSS baseline {res['rss_baseline_kb'] / 1024:.1f} MB peak {peak / 1024:.1f} MB -> "
            f"{res['rss_per_tx_kb']} kB per transaction; status p50 {res['status_ms_p50']} ms p99 {res['status_ms_p99']} ms, "
            f"late p50 {res['status_late_ms_p50']} p99 {res['status_late_ms_p99']} ms; answers {statuses}; errors {errors}; "
            f"window {res['window_s']} s (planned {K * I:g}); CPU s/s {res['cpu_s_per_s']}; "
            f"polls per status call {res['polls_per_status_call']}, per tx per wall interval {res['polls_per_tx_wall_interval']}")
    finally:
        sampling = False
        await http.close()
        json.dump(res, open(a.out, "w"), indent=1)
    return 0 if res.get("started") else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
