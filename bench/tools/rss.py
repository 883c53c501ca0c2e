"""Sample the memory of process trees: every --interval, sum VmRSS over each tree (root + descendants,
found through /proc/*/stat, so later forks count) and append "epoch_seconds name kB" to --out.
The driver takes the peak inside each measurement's time window.

usage: python rss.py --out FILE [--interval 0.1] NAME=PID ...   (stops on SIGTERM)
"""
import argparse
import os
import signal
import time

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


def kids_map():
    kids = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                stat = open(f"/proc/{e}/stat").read()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(e))
    return kids


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


with open(args.out, "a", buffering=1) as out:
    while not stop:
        kids = kids_map()
        now = time.time()
        for name, root in roots.items():
            total, stack = 0, [root]
            while stack:
                p = stack.pop()
                total += rss_kb(p)
                stack.extend(kids.get(p, []))
            out.write(f"{now:.3f} {name} {total}\n")
        time.sleep(args.interval)
