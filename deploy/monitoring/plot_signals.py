"""Plot the dashboard's queries from a Prometheus, without Grafana: one small chart per panel, as SVG.

    python deploy/monitoring/plot_signals.py --prometheus http://127.0.0.1:9090 --minutes 30 --out signals.svg

Reads deploy/monitoring/dashboard.json, fills Grafana's variables in (``$job`` with ``--job``, default every
job; ``$__rate_interval`` with ``--rate-interval``), asks ``/api/v1/query_range`` for each target and draws
its series. Standard library only. tests/deploy/test_monitoring.py runs it against the test Prometheus.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
import urllib.parse
import urllib.request
from html import escape
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parent / "dashboard.json"
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT, COLUMNS, PAD = 380, 210, 3, 36


def promql(expr: str, *, job: str, rate_interval: str, range_: str) -> str:
    """A panel query as Grafana would send it."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$__range", range_)
            .replace("$__interval", rate_interval).replace('=~"$job"', f'=~"{job}"'))


def legend(template: str, labels: dict[str, str]) -> str:
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def query_range(base: str, expr: str, start: float, end: float, step: str) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=30) as resp:  # noqa: S310
        body = json.load(resp)
    if body.get("status") != "success":
        raise SystemExit(f"{expr}: {body}")
    return body["data"]["result"]  # type: ignore[no-any-return]


def panel_series(base: str, panel: dict[str, Any], *, start: float, end: float, step: str, job: str,
                 rate_interval: str) -> list[tuple[str, list[tuple[float, float]]]]:
    series = []
    range_ = f"{max(1, int(end - start))}s"
    for target in panel["targets"]:
        expr = promql(target["expr"], job=job, rate_interval=rate_interval, range_=range_)
        for result in query_range(base, expr, start, end, step):
            points = [(float(t), float(v)) for t, v in result["values"] if math.isfinite(float(v))]
            if points:
                series.append((legend(target.get("legendFormat", ""), result["metric"]) or expr[:40], points))
    return series


def _number(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value * 100:.0f}%"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    return f"{value:.3g}"


def _runs(points: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Points split where samples are missing (no data there is not a straight line)."""
    steps = sorted(b[0] - a[0] for a, b in itertools.pairwise(points))
    usual = steps[len(steps) // 2] if steps else 0.0
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if runs[-1] and point[0] - runs[-1][-1][0] > 1.5 * usual:
            runs.append([])
        runs[-1].append(point)
    return runs


def chart(x0: float, y0: float, title: str, unit: str, series: list[tuple[str, list[tuple[float, float]]]],
          start: float, end: float) -> list[str]:
    out = [f'<g transform="translate({x0},{y0})">',
           f'<rect width="{WIDTH - 8}" height="{HEIGHT - 8}" fill="#fff" stroke="#ccc"/>',
           f'<text x="8" y="16" font-size="12" font-weight="bold">{escape(title)}</text>']
    left, top, right, bottom = PAD + 16, 26, WIDTH - 20, HEIGHT - 60
    values = [v for _, points in series for _, v in points]
    high = max([*values, 0.0]) or 1.0
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#999"/>')
    out.append(f'<text x="{left - 4}" y="{top + 4}" font-size="9" text-anchor="end">{_number(high, unit)}</text>')
    out.append(f'<text x="{left - 4}" y="{bottom}" font-size="9" text-anchor="end">0</text>')
    out.append(f'<text x="{right}" y="{bottom + 12}" font-size="9" text-anchor="end">{int(end - start)} s</text>')
    if not series:
        out.append(f'<text x="{(left + right) / 2}" y="{(top + bottom) / 2}" font-size="11" fill="#999" '
                   'text-anchor="middle">no data</text>')
    span = max(end - start, 1.0)
    for i, (name, points) in enumerate(series[:8]):
        colour = COLOURS[i % len(COLOURS)]
        for run in _runs(points):
            coords = " ".join(f"{left + (t - start) / span * (right - left):.1f},"
                              f"{bottom - v / high * (bottom - top):.1f}" for t, v in run)
            out.append(f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="1.5" '
                       f'points="{coords}"/>')
        row, col = divmod(i, 2)
        lx, ly = 8 + col * (WIDTH - 16) / 2, bottom + 24 + row * 11
        out.append(f'<rect x="{lx}" y="{ly - 7}" width="8" height="8" fill="{colour}"/>')
        out.append(f'<text x="{lx + 11}" y="{ly}" font-size="9">{escape(name[:34])}</text>')
    out.append("</g>")
    return out


def render(base: str, *, start: float, end: float, step: str, job: str, rate_interval: str) -> tuple[str, int]:
    """The SVG, and how many panels had data."""
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [p for row in dash["panels"] for p in [row, *row.get("panels", [])] if p["type"] != "row"]
    rows = math.ceil(len(panels) / COLUMNS)
    width, height = COLUMNS * WIDTH + 8, rows * HEIGHT + 40
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
           f'<rect width="{width}" height="{height}" fill="#f4f5f5"/>',
           f'<text x="8" y="22" font-size="15" font-weight="bold">{escape(dash["title"])}: the dashboard\'s '
           f'queries, {int(end - start)} s to {when}</text>']
    with_data = 0
    for i, panel in enumerate(panels):
        series = panel_series(base, panel, start=start, end=end, step=step, job=job, rate_interval=rate_interval)
        with_data += bool(series)
        row, col = divmod(i, COLUMNS)
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        out += chart(8 + col * WIDTH, 34 + row * HEIGHT, panel["title"], unit, series, start, end)
    out.append("</svg>")
    return "\n".join(out) + "\n", with_data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=30.0, help="how far back from now (default 30)")
    parser.add_argument("--step", default="15s", help="query_range step (default 15s)")
    parser.add_argument("--rate-interval", default="1m", help="$__rate_interval (default 1m)")
    parser.add_argument("--job", default=".+", help="regular expression for $job (default: every job)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    end = time.time()
    svg, with_data = render(args.prometheus.rstrip("/"), start=end - args.minutes * 60, end=end, step=args.step,
                            job=args.job, rate_interval=args.rate_interval)
    args.out.write_text(svg, encoding="utf-8")
    print(f"{args.out}: {with_data} panels with data")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
