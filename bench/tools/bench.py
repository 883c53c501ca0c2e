"""Measurement driver for bench/run.sh: the servers are already running (ports in the environment).

1. one scripted login per RP (gateway, mod_auth_openidc client-cookie, mod_auth_openidc shm) -> session
   cookies, plus checks (authenticated 200, identity headers at the upstream, unauthenticated 302);
2. wrk runs (rows 1-3), each with a warm-up, timestamps kept so the RSS peak of each run can be cut
   out of the sampler's time series;
3. optional py-spy of the gateway under wrk load (its own run, not one of the measured ones);
4. login benchmarks (row 4): sequential, then PAR_LOGINS at a time;
5. writes OUT/results.json and OUT/results.md and prints the table.
"""
from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import login

E = os.environ
H = E["BIND_HOST"]
OUT = E["OUT"]
LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk.lua")
OP = f"http://{H}:{E['OP_PORT']}"
U = lambda port, path="/": f"http://{H}:{port}{path}"  # noqa: E731
GW, CC, SHM, NGX, FA = (E["GATEWAY_PORT"], E["APACHE_CC_PORT"], E["APACHE_SHM_PORT"],
                        E["NGINX_PROXY_PORT"], E["NGINX_AUTHREQ_PORT"])
GWD = E["GATEWAY_DIRECT_PORT"]  # the same gateway config with direct_login_redirect: true (rows 3 and 4)
SSN = "196802020575"
RESULTS: dict = {"checks": {}, "wrk": [], "logins": [], "pyspy": {}}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


OPENER = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))


def get(url: str, cookie: str | None = None, accept: str = "text/html") -> tuple[int, dict, str]:
    req = urllib.request.Request(url, headers={"Accept": accept, **({"Cookie": cookie} if cookie else {})})
    try:
        with OPENER.open(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read(2000).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read(2000).decode("utf-8", "replace")


def echo(port: str, cookie: str) -> dict:
    st, _, body = get(U(port, "/echo"), cookie)
    return {"status": str(st), **dict(line.split("=", 1) for line in body.splitlines() if "=" in line)}


def login_and_check(name: str, port: str) -> str:
    async def one():
        conn = login.aiohttp.TCPConnector()
        try:
            return await login.login_once(conn, U(port), OP)
        finally:
            await conn.close()
    r = asyncio.run(one())
    cookie = r["cookie"]
    st, hdrs, body = get(U(port), cookie)
    ec = echo(port, cookie)
    ust, uh, _ = get(U(port))
    chk = {"login_steps": r["steps"], "cookie_bytes": len(cookie), "cookie_names": [c.split("=")[0] for c in cookie.split("; ")],
           "authed_status": st, "authed_body": body[:20], "authed_sets_cookie": "Set-Cookie" in hdrs,
           "echo": {k: (v[:40] + "..." if len(v) > 40 else v) for k, v in ec.items()},
           "unauth_status": ust, "unauth_location": uh.get("Location", "")[:120]}
    chk["ok"] = st == 200 and SSN in (ec.get("auth_ssn", "") + ec.get("claim_ssn", "")) and ust == 302
    RESULTS["checks"][name] = chk
    log(f"check {name}: ok={chk['ok']} authed={st} unauth={ust} -> {chk['unauth_location'][:60]} cookie={len(cookie)}B")
    if not chk["ok"]:
        log(f"  {json.dumps(chk)[:800]}")
    return cookie


def wrk(url: str, seconds: int, headers: list[str]) -> dict | None:
    cmd = ["taskset", "-c", E["WRK_CPUS"], "wrk", "-t1", f"-c{E['CONNECTIONS']}", f"-d{seconds}s",
           "--timeout", "5s", "--latency", "-s", LUA]
    for h in headers:
        cmd += ["-H", h]
    p = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60)
    for line in p.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[8:])
    log(f"wrk gave no summary: {p.stdout[-300:]} {p.stderr[-300:]}")
    return None


def load(row: str, case: str, server: str, rss_name: str, url: str, cookie: str | None, expect: int) -> None:
    headers = ["Accept: text/html"] + ([f"Cookie: {cookie}"] if cookie else [])
    st, _, _ = get(url, cookie)
    if st != expect:
        log(f"SKIP {case} / {server}: {url} answers {st}, expected {expect}")
        RESULTS["wrk"].append({"row": row, "case": case, "server": server, "skipped": f"status {st}"})
        return
    runs = []
    for rep in range(int(E["REPEATS"])):
        if int(E["WARMUP"]):
            wrk(url, int(E["WARMUP"]), headers)
        t0 = time.time()
        w = wrk(url, int(E["DURATION"]), headers)
        t1 = time.time()
        if w is None:
            continue
        w.update(rps=w["requests"] / (w["duration_us"] / 1e6), t0=t0, t1=t1)
        runs.append(w)
        log(f"wrk {case} / {server} rep {rep + 1}: {w['rps']:.0f} req/s p50 {w['p50'] / 1000:.2f} ms "
            f"p99 {w['p99'] / 1000:.2f} ms non2xx3xx {w['err_status']}")
    runs.sort(key=lambda w: w["rps"])
    best = runs[len(runs) // 2] if runs else None  # the median run by req/s
    if best:
        best["rps_all"] = [round(w["rps"]) for w in runs]
        best["t0"], best["t1"] = min(w["t0"] for w in runs), max(w["t1"] for w in runs)  # RSS peak over all reps
    # after the run: still authenticated / still the same answer?
    st_after, _, _ = get(url, cookie)
    RESULTS["wrk"].append({"row": row, "case": case, "server": server, "rss_name": rss_name, "url": url,
                           "status_after": st_after, **(best or {"skipped": "wrk failed"})})


def pyspy(name: str, url: str, cookie: str | None) -> None:
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        spy = shutil.which("py-spy") or ""
    if not spy or not E.get("GATEWAY_PID"):
        return
    raw = os.path.join(OUT, f"pyspy-{name}.txt")
    secs = int(E.get("PYSPY_SECONDS", "8"))
    headers = ["Accept: text/html"] + ([f"Cookie: {cookie}"] if cookie else [])
    cmd = ["taskset", "-c", E["WRK_CPUS"], spy, "record", "--pid", E["GATEWAY_PID"], "--subprocesses",
           "-d", str(secs), "-r", "200", "--format", "raw", "-o", raw, "--nonblocking"]
    sp = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(OUT, "logs", f"pyspy-{name}.log"), "w"))
    w = wrk(url, secs + 2, headers)
    sp.wait(timeout=60)
    if not os.path.exists(raw):
        log(f"py-spy {name}: no output (see logs/pyspy-{name}.log)")
        return
    self_t, incl, total = collections.Counter(), collections.Counter(), 0
    for line in open(raw):
        stack, _, n = line.rstrip().rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        total += n
        if frames:
            self_t[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    top = lambda c: [(round(100 * v / total, 1), k) for k, v in c.most_common(25)]  # noqa: E731
    RESULTS["pyspy"][name] = {"samples": total, "self_top": top(self_t), "inclusive_top": top(incl),
                              "rps_under_pyspy": w and round(w["requests"] / (w["duration_us"] / 1e6))}
    log(f"py-spy {name}: {total} samples -> {raw}")


def logins(label_server: list[tuple[str, str, str]], n: int, parallel: int) -> None:
    for server, rss_name, port in label_server:
        t0 = time.time()
        r = asyncio.run(login.run_logins(U(port), OP, n, parallel))
        r.update(server=server, rss_name=rss_name, t0=t0, t1=time.time())
        RESULTS["logins"].append(r)
        log(f"logins {server} n={n} par={parallel}: ok {r['ok']}/{n}, {r['logins_per_s']:.1f}/s, total {r['total_ms']:.1f} ms, "
            f"redirect {r['redirect_ms']:.2f} callback {r['callback_ms']:.2f} first {r['first_ms']:.2f} ms {r['errors'][:1]}")


def main() -> int:
    try:
        return measure()
    finally:
        json.dump(RESULTS, open(os.path.join(OUT, "results.json"), "w"), indent=1)


def measure() -> int:
    only = set(filter(None, E.get("ONLY", "").split(",")))
    want = lambda k: not only or k in only  # noqa: E731
    gw = login_and_check("gateway", GW)
    # forward-auth front: same gateway session, judged by /_auth/verify through nginx auth_request
    st, _, body = get(U(FA), gw)
    ec = echo(FA, gw)
    ust, uh, _ = get(U(FA))
    RESULTS["checks"]["forward-auth"] = {"authed_status": st, "echo": {k: v[:40] for k, v in ec.items()},
                                         "unauth_status": ust, "unauth_location": uh.get("Location", "")[:120],
                                         "ok": st == 200 and ec.get("auth_ssn") == SSN and ust == 302}
    log(f"check forward-auth: {RESULTS['checks']['forward-auth']}")
    login_and_check("gateway direct_login_redirect", GWD)
    cc = login_and_check("mod_auth_openidc client-cookie", CC)
    shm = login_and_check("mod_auth_openidc shm", SHM)

    G, A_CC, A_SHM, N = "eid-gateway", "mod_auth_openidc client-cookie", "mod_auth_openidc shm", "nginx (no auth)"
    G_DIRECT = "eid-gateway direct_login_redirect"
    if want("proxy"):
        for path, case, row in (("/", "authenticated GET, small body", "1"), ("/1m", "authenticated GET, 1 MiB body", "1b")):
            load(row, case, N, "nginx-proxy", U(NGX, path), None, 200)
            load(row, case, G, "gateway", U(GW, path), gw, 200)
            load(row, case, A_CC, "apache", U(CC, path), cc, 200)
            load(row, case, A_SHM, "apache", U(SHM, path), shm, 200)
    if want("verify"):
        load("2", "forward-auth: nginx auth_request -> /_auth/verify, then upstream", "nginx + eid-gateway verify",
             "gateway", U(FA), gw, 200)
    if want("unauth"):
        case = "unauthenticated GET (redirect towards the OP)"
        load("3", case, "eid-gateway: GET / -> 302 /_auth/login", "gateway", U(GW), None, 302)
        load("3", case, "eid-gateway: GET /_auth/login -> 302 OP", "gateway", U(GW, "/_auth/login?rd=%2F"), None, 302)
        load("3", case, f"{G_DIRECT}: GET / -> 302 OP", "gateway-direct", U(GWD), None, 302)
        load("3", case, "nginx auth_request + verify -> 302 login", "gateway", U(FA), None, 302)
        load("3", case, A_CC, "apache", U(CC), None, 302)
        load("3", case, A_SHM, "apache", U(SHM), None, 302)
    if want("pyspy") and E.get("PYSPY", "1") == "1":
        pyspy("proxy-small", U(GW), gw)
        pyspy("verify", U(FA), gw)
        pyspy("login-redirect", U(GW, "/_auth/login?rd=%2F"), None)
    if want("logins"):
        rps = [(G, "gateway", GW), (G_DIRECT, "gateway-direct", GWD), (A_CC, "apache", CC), (A_SHM, "apache", SHM)]
        logins(rps, int(E["LOGIN_N"]), 1)
        if int(E.get("PAR_LOGINS", "20")) > 1:
            logins(rps, int(E["PAR_LOGIN_N"]), int(E["PAR_LOGINS"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
