"""The development IdP (gateway.devidp) for bench/run.sh's headless step, with a poll counter.

usage: python headless_idp.py --port P --client-id ID --client-key PEM [--interval 5] [--expires-in 900]
                              [--max-orders 20000]

It is gateway.devidp.create_devidp_app unchanged, with three bench-only adjustments made here (not in
gateway/devidp), because the dev IdP's built-in limits are sized for tests, not for 10,000 orders:
  - the headless order store holds --max-orders orders (gateway.devidp.headless_store.MAX_ORDERS = 1000);
  - the assertion-jti replay cache holds 500,000 entries (ExpiringStore's default 10,000 fills in
    seconds at ~2,000 polls/s: every poll carries a fresh private_key_jwt that lives 60 s);
  - the order store's expiry sweep runs at most once a second: HeadlessStore.get() sweeps all orders on
    every poll, O(orders) per poll, which at 10,000 orders would make the IdP, not the gateway, the
    thing being measured on the shared CPU.
A middleware counts every POST /token (each is one provider poll) per headless_req_id, with its time
and answer; GET /_bench/polls returns the counts (?since=EPOCH&until=EPOCH limits them to a window).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import time

from aiohttp import web

from gateway import keys
from gateway.devidp import DevClient, create_devidp_app
from gateway.devidp.headless_store import HeadlessStore
from gateway.devidp.state import STATE
from gateway.devidp.store import ExpiringStore

POLLS: list[tuple[float, str, str]] = []  # (epoch, headless_req_id, answer: pending / slow_down / other error)


class SweepOncePerSecond(HeadlessStore):
    _last_sweep = 0.0

    def _sweep(self) -> None:
        now = self._clock()
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            super()._sweep()


@web.middleware
async def count_polls(request: web.Request, handler):
    if request.method != "POST" or request.path != "/token":
        return await handler(request)
    t = time.time()
    form = await request.post()  # aiohttp keeps the parsed body: the handler reads it again for free
    response = await handler(request)
    answer = "ok" if response.status == 200 else str(response.status)
    if response.status == 400 and isinstance(response, web.Response) and response.body:
        try:
            answer = json.loads(bytes(response.body)).get("error", "400")
        except (ValueError, TypeError):
            pass
    POLLS.append((t, str(form.get("headless_req_id", "")), answer))
    return response


async def handle_polls(request: web.Request) -> web.StreamResponse:
    since = float(request.query.get("since", "0"))
    until = float(request.query.get("until", "inf"))
    sel = [p for p in POLLS if since <= p[0] < until]
    per_tx = collections.Counter(p[1] for p in sel)
    answers = collections.Counter(p[2] for p in sel)
    # gaps between consecutive polls of one transaction (all polls, not only the window's)
    last: dict[str, float] = {}
    gaps: list[float] = []
    for t, rid, _ in POLLS:
        if rid in last and since <= t < until:
            gaps.append(t - last[rid])
        last[rid] = t
    gaps.sort()
    q = lambda p: round(gaps[min(len(gaps) - 1, int(p * len(gaps)))], 3) if gaps else None  # noqa: E731
    return web.json_response({
        "polls": len(sel), "transactions_polled": len(per_tx), "answers": dict(answers),
        "polls_per_tx_histogram": {str(k): v for k, v in sorted(collections.Counter(per_tx.values()).items())},
        "gap_s": {"n": len(gaps), "min": q(0), "p01": q(0.01), "p50": q(0.5), "p99": q(0.99), "max": q(0.999999),
                  "mean": round(statistics.fmean(gaps), 3) if gaps else None},
        "orders_live": len(request.app[STATE].headless),
    })


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-key", required=True, help="the gateway's private_key_jwt PEM (its public key is registered)")
    ap.add_argument("--redirect-uri", required=True)
    ap.add_argument("--interval", type=float, default=5.0, help="least time between two polls of one order (else slow_down)")
    ap.add_argument("--expires-in", type=int, default=900)
    ap.add_argument("--max-orders", type=int, default=20_000)
    a = ap.parse_args()
    issuer = f"http://{a.host}:{a.port}"
    pem = open(a.client_key, "rb").read()
    idp = create_devidp_app(
        issuer=issuer, headless_interval=a.interval, headless_expires_in=a.expires_in,
        clients=[DevClient(client_id=a.client_id, auth_method="private_key_jwt",
                           jwks=(keys.signing_key_from_pem(pem).public,), redirect_uris=(a.redirect_uri,))],
    )
    state = idp[STATE]
    state.headless = SweepOncePerSecond(state.clock, max_items=a.max_orders)
    state.assertion_ids = ExpiringStore(state.clock, max_items=500_000)
    idp.middlewares.insert(0, count_polls)
    idp.router.add_get("/_bench/polls", handle_polls)
    web.run_app(idp, host=a.host, port=a.port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
