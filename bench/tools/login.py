"""Scripted browser login through an authenticating proxy (RP) against the OP's dev interactions.

It follows every redirect by hand (RP -> OP /auth -> login form -> consent form -> RP callback -> the
page), fills the OP's login/consent forms, keeps cookies in a jar, and times every HTTP exchange.
The RP's session cookie(s) are the ones that responses from the RP origin set and that are still in
the jar at the end.

Step split (what the table reports):
  redirect  every RP exchange before the first OP one (gateway: GET / -> 302 /_auth/login -> 302 OP;
            mod_auth_openidc: GET / -> 302 OP)
  op        every OP exchange (authorize, login form + POST, consent form + POST)
  callback  the RP exchange whose query has code= (code exchange at the token endpoint, ID token
            check, session cookie; mod_auth_openidc also calls userinfo here)
  first     the last RP exchange: the first authenticated request (200 from the upstream)
"""
from __future__ import annotations

import asyncio
import statistics
import time
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import aiohttp

REDIRECTS = (301, 302, 303, 307, 308)
HEADERS = {"Accept": "text/html,*/*;q=0.8", "User-Agent": "eid-gateway-bench/1"}


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._cur: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._cur = {"action": a.get("action", ""), "method": a.get("method", "get").lower(), "fields": {}}
            self.forms.append(self._cur)
        elif tag in ("input", "button") and self._cur is not None and a.get("name"):
            if a.get("type") in ("submit", "button", "reset") and a["name"] != "prompt":
                return
            self._cur["fields"][a["name"]] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._cur = None


def origin(url: str) -> tuple:
    s = urlsplit(url)
    return (s.scheme, s.hostname, s.port)


class LoginError(Exception):
    pass


async def login_once(conn: aiohttp.BaseConnector, start_url: str, op_url: str, user: str = "terne") -> dict:
    rp, op = origin(start_url), origin(op_url)
    jar = aiohttp.CookieJar(unsafe=True)
    rp_cookie_names: set[str] = set()
    steps: list[dict] = []
    url, method, data = start_url, "GET", None
    async with aiohttp.ClientSession(connector=conn, connector_owner=False, cookie_jar=jar,
                                     headers=HEADERS, timeout=aiohttp.ClientTimeout(total=30)) as s:
        t0 = time.perf_counter()
        status, text = 0, ""
        for _ in range(30):
            where = "rp" if origin(url) == rp else ("op" if origin(url) == op else "other")
            t = time.perf_counter()
            async with s.request(method, url, data=data, allow_redirects=False) as r:
                text = await r.text(errors="replace")
                status, location = r.status, r.headers.get("Location")
                ctype = r.headers.get("Content-Type", "")
                if where == "rp":
                    rp_cookie_names.update(r.cookies.keys())
            steps.append({"where": where, "path": urlsplit(url).path, "code": "code=" in urlsplit(url).query,
                          "status": status, "ms": (time.perf_counter() - t) * 1000})
            if status in REDIRECTS and location:
                url = urljoin(url, location)
                if status not in (307, 308):
                    method, data = "GET", None
                continue
            if status == 200 and "html" in ctype and "<form" in text:
                p = _Forms()
                p.feed(text)
                forms = [f for f in p.forms if f["method"] == "post"]
                if forms:
                    f = forms[0]
                    fields = dict(f["fields"])
                    if "login" in fields:
                        fields["login"] = user
                    if "password" in fields:
                        fields["password"] = "any-password"
                    url, method, data = urljoin(url, f["action"] or url), "POST", fields
                    continue
            break
        total = (time.perf_counter() - t0) * 1000
        if status != 200 or origin(url) != rp:
            raise LoginError(f"login ended at {url} ({status}); steps="
                             f"{[(x['where'], x['path'], x['status']) for x in steps]}; body={text[:300]!r}")
        cookies = {c.key: c.value for c in jar if c.key in rp_cookie_names and c.value}
        if not cookies:
            raise LoginError("the RP set no session cookie")
        # The same page once more: a request of an established session, for comparison with the first.
        t = time.perf_counter()
        async with s.get(url, allow_redirects=False) as r:
            await r.read()
            if r.status != 200:
                raise LoginError(f"the second authenticated request got {r.status}")
        again_ms = (time.perf_counter() - t) * 1000
    rp_steps = [x for x in steps if x["where"] == "rp"]
    first_op = next(i for i, x in enumerate(steps) if x["where"] == "op")
    cb = [x["ms"] for x in rp_steps if x["code"]]
    return {
        "total_ms": total,
        "redirect_ms": sum(x["ms"] for x in steps[:first_op] if x["where"] == "rp"),
        "op_ms": sum(x["ms"] for x in steps if x["where"] == "op"),
        "callback_ms": cb[0] if cb else float("nan"),
        "first_ms": rp_steps[-1]["ms"],
        "again_ms": again_ms,
        "hops": len(steps),
        "cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
        "steps": [(x["where"], x["path"], x["status"], round(x["ms"], 2)) for x in steps],
    }


def pct(v: list[float], p: float) -> float:
    v = sorted(v)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


async def run_logins(start_url: str, op_url: str, n: int, parallel: int = 1) -> dict:
    """n logins, `parallel` at a time (fresh cookie jar each, one shared connection pool)."""
    conn = aiohttp.TCPConnector(limit=max(100, parallel * 4))
    results, errors = [], []
    sem = asyncio.Semaphore(parallel)

    async def one():
        async with sem:
            try:
                results.append(await login_once(conn, start_url, op_url))
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}"[:400])

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(one() for _ in range(n)))
    finally:
        await conn.close()
    wall = time.perf_counter() - t0
    med = lambda k: statistics.median([r[k] for r in results]) if results else float("nan")  # noqa: E731
    return {
        "n": n, "parallel": parallel, "ok": len(results), "failed": len(errors), "wall_s": wall,
        "logins_per_s": len(results) / wall if wall else 0.0,
        "total_ms": med("total_ms"), "total_p90_ms": pct([r["total_ms"] for r in results], 90),
        "total_p99_ms": pct([r["total_ms"] for r in results], 99),
        **{f"{k}_ms": med(f"{k}_ms") for k in ("redirect", "op", "callback", "first", "again")},
        **{f"{k}_p99_ms": pct([r[f"{k}_ms"] for r in results], 99)
           for k in ("redirect", "op", "callback", "first", "again")},
        "hops": results[0]["hops"] if results else None,
        "example_steps": results[0]["steps"] if results else None, "errors": errors[:3],
    }
