"""Print ONE table from OUT/results.json + OUT/rss.txt (markdown). usage: python report.py OUT"""
from __future__ import annotations

import json
import math
import os
import sys

OUT = sys.argv[1]
R = json.load(open(os.path.join(OUT, "results.json")))
SAMPLES: dict[str, list[tuple[float, int]]] = {}
if os.path.exists(os.path.join(OUT, "rss.txt")):  # no peer steps (ONLY=headless / workers): no sampler
    for line in open(os.path.join(OUT, "rss.txt")):
        t, name, kb = line.split()
        SAMPLES.setdefault(name, []).append((float(t), int(kb)))


def peak_mb(name: str, t0: float, t1: float) -> str:
    v = [kb for t, kb in SAMPLES.get(name, []) if t0 <= t <= t1]
    return f"{max(v) / 1024:.1f}" if v else "-"


def f(x, d=2):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


G, CC, SHM, N = "eid-gateway", "mod_auth_openidc client-cookie", "mod_auth_openidc shm", "nginx (no auth)"
rows = []
hdr = ("| # | case | server | req/s | p50 ms | p99 ms | peak RSS MB | non-2xx/3xx, sock err | gw ÷ mod_oidc cc | gw ÷ mod_oidc shm | gw ÷ nginx |\n"
       "|---|---|---|---|---|---|---|---|---|---|---|")
by = {(w["row"], w["server"]): w for w in R["wrk"] if "rps" in w}
row1 = {w["server"]: w for w in R["wrk"] if w.get("row") == "1" and "rps" in w}


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"


for w in R["wrk"]:
    if "rps" not in w:
        rows.append(f"| {w['row']} | {w['case']} | {w['server']} | skipped ({w.get('skipped')}) | | | | | | | |")
        continue
    peers = {k: by.get((w["row"], k)) for k in (CC, SHM, N)}
    if w["row"] == "2":  # forward-auth is compared with the authenticated-proxy peers of row 1
        peers = {k: row1.get(k) for k in (CC, SHM, N)}
    is_gw = w["server"] == G or w["server"].startswith(("nginx + eid", "eid-gateway", "nginx auth_request"))
    r = [ratio(w["rps"], (peers[k] or {}).get("rps")) if is_gw else "" for k in (CC, SHM, N)]
    if w["row"] == "3" and is_gw:
        r[2] = "-"
    errs = w["err_status"]
    sock = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"]
    rss = peak_mb(w["rss_name"], w["t0"], w["t1"])
    if w["row"] == "2":
        rss += f" (+nginx {peak_mb('nginx-proxy', w['t0'], w['t1'])})"
    rows.append(f"| {w['row']} | {w['case']} | {w['server']} | {w['rps']:.0f} | {w['p50'] / 1000:.2f} | "
                f"{w['p99'] / 1000:.2f} | {rss} | {errs}, {sock} | {r[0]} | {r[1]} | {r[2]} |")

steps = (("redirect", "4a", "login step: redirect (unauth GET -> 302 to the OP)"),
         ("callback", "4b", "login step: callback (code exchange + ID token check + session)"),
         ("first", "4c", "login step: first authenticated request"),
         ("again", "4d", "second authenticated request of that session (not a login step: for comparison)"),
         ("total", "4", "full login incl. OP pages"))
for par in sorted({L["parallel"] for L in R["logins"]}):
    Ls = {L["server"]: L for L in R["logins"] if L["parallel"] == par}
    mode = "sequential" if par == 1 else f"{par} in parallel"
    for key, num, label in steps:
        for srv, L in Ls.items():
            if f"{key}_ms" not in L:  # results.json of an older bench run
                continue
            p50 = L[f"{key}_ms"]
            p99 = L["total_p99_ms"] if key == "total" else L[f"{key}_p99_ms"]
            rate = f"{L['logins_per_s']:.1f} logins/s" if key == "total" else ""
            rss = peak_mb(L["rss_name"], L["t0"], L["t1"]) if key == "total" else ""
            fails = f"{L['failed']} failed of {L['n']}" if key == "total" else ""
            rr = ["", "", ""]
            if srv.startswith(G):  # latency ratio: gateway ms ÷ peer ms (lower is better)
                rr = [f"{p50 / Ls[k][f'{key}_ms']:.2f} (ms)" if k in Ls and Ls[k][f"{key}_ms"] else "-" for k in (CC, SHM)] + ["-"]
            rows.append(f"| {num} | {label}, {mode} (n={L['n']}) | {srv} | {rate} | {f(p50)} | {f(p99)} | {rss} | {fails} | "
                        f"{rr[0]} | {rr[1]} | {rr[2]} |")

# row 6: --workers 2 vs --workers 1, gateway + upstream + wrk sharing both cores
W = {w["workers"]: w for w in R.get("workers", []) if "rps" in w}
for n, w in sorted(W.items()):
    # Throughput per CPU-second the gateway used: shows whether a worker does as much with its share of
    # the cores as one alone (the cores are shared with wrk and the upstream, so req/s alone cannot).
    per_cpu = {k: v["rps"] / v["cpu_gateway"] for k, v in W.items() if v.get("cpu_gateway")}
    rw = f" (÷ workers 1: {w['rps'] / W[1]['rps']:.2f}" if n != 1 and 1 in W else ""
    if rw and n in per_cpu and 1 in per_cpu:
        rw += f"; req per gateway CPU-s {per_cpu[n]:.0f} vs {per_cpu[1]:.0f}: {per_cpu[n] / per_cpu[1]:.2f}"
    rw += ")" if rw else ""
    sock = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"]
    rows.append(f"| 6 | authenticated GET, small body; gateway, upstream and wrk all on CPUs {w['cpus']} "
                f"(CPU s/s: gateway {w['cpu_gateway']}, upstream {w['cpu_upstream']}, wrk {w['cpu_wrk']}; "
                f"runs {w['rps_all']}) | eid-gateway --workers {n}{rw} | {w['rps']:.0f} | {w['p50'] / 1000:.2f} | "
                f"{w['p99'] / 1000:.2f} | {w['rss_peak_kb'] / 1024:.1f} | {w['err_status']}, {sock} | | | |")
for w in R.get("workers", []):
    if "rps" not in w:
        rows.append(f"| 6 | --workers {w.get('workers')} | eid-gateway | skipped ({w.get('skipped')}) | | | | | | | |")

# rows 7 and 8: one setting changed between two gateways in one run (bench/tools/pair.py)
PAIRS = (
    ("routes", 7, "1", "20", "authenticated GET, small body, {} route(s) configured, the request matching the last "
     "route tried", "÷ 1 route"),
    ("accesslog", 8, "off", "on", "authenticated GET, small body, defaults (log_level info), access_log: {}",
     "÷ access log off"),
)
for key, num, base, other, text, per in PAIRS:
    P = {str(r["label"]): r for r in R.get(key, []) if "rps" in r}
    for label in (base, other):
        if label not in P:
            continue
        r = P[label]
        ratio = f" ({per}: {r['rps'] / P[base]['rps']:.3f})" if label != base and base in P else ""
        sock = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
        rows.append(f"| {num} | {text.format(label)} (runs {r['rps_all']}) | eid-gateway{ratio} | {r['rps']:.0f} | "
                    f"{r['p50'] / 1000:.2f} | {r['p99'] / 1000:.2f} | | {r['err_status']}, {sock} | | | |")

# row 5: N pending headless transactions in one gateway worker
Hd = R.get("headless")
if Hd and Hd.get("started"):
    errs = sum(Hd["errors"].values())
    rows.append(
        f"| 5 | headless (BankID via dev IdP): {Hd['started']:,} pending transactions in 1 worker, status asked once "
        f"per {Hd['interval_s']:g} s interval each, {Hd['intervals']} intervals ({Hd['key'].upper()} private_key_jwt); "
        f"req/s = status calls/s; window {Hd['window_s']} s for {Hd['intervals'] * Hd['interval_s']:g} s planned, "
        f"status calls late p50 {Hd['status_late_ms_p50']} ms; CPU s/s {Hd.get('cpu_s_per_s')} | eid-gateway | {Hd['status_calls_per_s']:.0f} | {f(Hd['status_ms_p50'], 1)} | "
        f"{f(Hd['status_ms_p99'], 1)} | {Hd['rss_peak_kb'] / 1024:.1f} (baseline {Hd['rss_baseline_kb'] / 1024:.1f}; "
        f"{Hd['rss_per_tx_kb']:.2f} kB per transaction) | {errs} | | | |")
    idp = Hd["idp"]
    rows.append(
        f"| 5b | headless: provider polls per transaction per interval (ideal 1.00): dev IdP token endpoint / "
        f"gateway_idp_polls_total; per interval {Hd['idp_polls_per_interval']}, polls per transaction in the window "
        f"{idp['polls_per_tx_histogram']}, gap between polls of one transaction p50 {idp['gap_s']['p50']} s "
        f"(min {idp['gap_s']['min']} s), answers {idp['answers']}; per status call {Hd.get('polls_per_status_call')}, "
        f"per transaction per {Hd['interval_s']:g} s of wall time {Hd.get('polls_per_tx_wall_interval')} | eid-gateway | "
        f"{f(Hd['polls_per_tx_interval_idp'])} / {f(Hd['polls_per_tx_interval_metric'])} | | | | | | | |")
    rows.append(
        f"| 5c | headless: starting {Hd['n']:,} transactions (64 at a time) | eid-gateway | {Hd['starts_per_s']:.0f} "
        f"starts/s | {f(Hd['start_ms_p50'], 1)} | {f(Hd['start_ms_p99'], 1)} | {Hd['rss_after_start_kb'] / 1024:.1f} | "
        f"{Hd['started']} of {Hd['n']} started | | | |")
elif Hd is not None:
    rows.append(f"| 5 | headless: no transaction started ({Hd.get('errors')}) | eid-gateway | skipped | | | | | | | |")

print("## eid-gateway vs peers (bench/run.sh)\n")
print(open(os.path.join(OUT, "versions.txt")).read().replace("\n", "  \n"))
print(hdr)
print("\n".join(rows))
print("""
Access logs on every side (issue 12): the gateway at its defaults (access_log on, log_level info) into its log
file, nginx (proxy and auth_request front) `access_log ... combined`, Apache `CustomLog ... combined`; only the
upstream nginx, which stands for the application, logs nothing. The gateway with its access log off: row 8.
Ratios on throughput rows are req/s ÷ req/s (higher is better for the gateway); on login rows they
are median ms ÷ median ms (lower is better). Row 2 is compared with row 1's mod_auth_openidc and
nginx figures (same request, judged by a different mechanism). Row 3: the gateway's unauthenticated
GET / only redirects to its own /_auth/login, which then builds the authorization request (state,
nonce, PKCE, login cookie) and redirects to the OP; mod_auth_openidc does both in one response, and so
does "eid-gateway direct_login_redirect" (a second gateway with that option, rows 3 and 4 only).
Peak RSS: VmRSS summed over the server's process tree, 100 ms samples, peak within that run; the two
mod_auth_openidc vhosts are one Apache instance (2 processes x 32 threads).
Row 5: the gateway (1 worker) is on CPU 0; the driver (bench/tools/headless_load.py) and the dev IdP,
which stands in for a remote service, are on CPU 1 (HEADLESS_IDP_CPUS). Memory per transaction = (peak
RSS - RSS after a warm-up) / transactions. Polls per transaction per interval = provider polls during
the status window / (transactions x intervals). The gateway polls no sooner than one interval after the
previous poll's answer; a status call that comes at most min(1 s, interval/2) early waits for that time.
Row 6: the machine has two cores, so the gateway, the upstream nginx and wrk (-t1) share both; the
CPU s/s column says how they were shared. Rows 1-4 pin the servers to CPU 0 and wrk to CPU 1.""")
print("\nChecks:")
for k, c in R["checks"].items():
    print(f"- {k}: ok={c.get('ok')} authed={c.get('authed_status')} unauth={c.get('unauth_status')} "
          f"-> {c.get('unauth_location', '')[:70]} cookie={c.get('cookie_bytes', '-')}B {c.get('cookie_names', '')}")
for name, p in R.get("pyspy", {}).items():
    print(f"\npy-spy {name} ({p['samples']} samples, {p['rps_under_pyspy']} req/s while sampled), top self time:")
    for pc, fr in p["self_top"][:12]:
        print(f"  {pc:5.1f}%  {fr}")
