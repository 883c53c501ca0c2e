"""Sample the memory of process trees: every --interval, sum VmRSS over each tree (root + descendants,
found through /proc/*/stat, so later forks count) and append "epoch_seconds name kB" to --out.
The driver takes the peak inside each measurement's time window.

usage: python rss.py --out FILE [--interval 0.1] NAME=PID ...   (stops on SIGTERM)
"""
import argparse
import signal
import time

from proctree import kids_map, tree_rss_kb

ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("--interval", type=float, default=0.1)
ap.add_argument("targets", nargs="+")
args = ap.parse_args()
roots = {n: int(p) for n, p in (t.split("=", 1) for t in args.targets)}
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)


with open(args.out, "a", buffering=1) as out:
    while not stop:
        kids = kids_map()
        now = time.time()
        for name, root in roots.items():
            total = tree_rss_kb(root, kids)
            out.write(f"{now:.3f} {name} {total}\n")
        time.sleep(args.interval)
