"""Memory of a process tree, read from /proc: VmRSS summed over a root and all its descendants (found
through /proc/*/stat, so processes forked later count too). Used by rss.py, headless_load.py, workers.py."""
import os


def kids_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                stat = open(f"/proc/{e}/stat").read()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(e))
    return kids


def rss_kb(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(root: int, kids: dict[int, list[int]] | None = None) -> int:
    kids = kids_map() if kids is None else kids
    total, stack = 0, [root]
    while stack:
        p = stack.pop()
        total += rss_kb(p)
        stack.extend(kids.get(p, []))
    return total
