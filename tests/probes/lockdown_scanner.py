#!/usr/bin/python3
"""Scans /proc inside a sandbox until /tmp/stop-scan exists.

Prints a VIOLATION line for every process seen without the seccomp filter (Seccomp: 2)
or with a capability outside ALLOWED (hex, argv[1]) in its effective, permitted or
bounding set; then `seen=N`, the number of distinct processes it looked at.
Used by the worker's and the SSH front end's lock-down tests.
"""
import glob, os, sys
allowed = int(sys.argv[1], 16)
seen, bad = set(), set()
while True:
    stop = os.path.exists("/tmp/stop-scan")
    for path in glob.glob("/proc/[0-9]*/status"):
        try:
            fields = dict(l.split(":", 1) for l in open(path).read().splitlines() if ":" in l)
        except OSError:
            continue
        pid = path.split("/")[2]
        seen.add(pid)
        seccomp = fields.get("Seccomp", "").strip()
        caps = [int(fields.get(k, "0").strip(), 16) for k in ("CapEff", "CapPrm", "CapBnd")]
        if seccomp != "2" or any(c & ~allowed for c in caps):
            key = (pid, seccomp, tuple(caps))
            if key not in bad:
                bad.add(key)
                print("VIOLATION pid=%s name=%s seccomp=%s caps=%s" % (
                    pid, fields.get("Name", "?").strip(), seccomp, [hex(c) for c in caps]), flush=True)
    if stop:
        break
print("seen=%d" % len(seen), flush=True)
