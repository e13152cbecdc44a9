#!/usr/bin/python3
"""tracer: appends request traces to a log file.

Usage: tracer.py --log FILE
Signals: SIGHUP closes and reopens the log file (for log rotation); SIGTERM stops.
"""
import argparse
import os
import random
import signal
import time

FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT
reopen = False


def on_hup(signum, frame):
    global reopen
    reopen = True


def main():
    global reopen
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    args = p.parse_args()
    signal.signal(signal.SIGHUP, on_hup)
    out = os.open(args.log, FLAGS, 0o644)
    print(f"tracer started (pid {os.getpid()}), writing {args.log}", flush=True)
    while True:
        if reopen:
            reopen = False
            os.close(out)
            out = os.open(args.log, FLAGS, 0o644)
            print(f"reopened {args.log}", flush=True)
        line = "%s TRACE req=%08x path=/api/items status=200 dur_ms=%d\n" % (
            time.strftime("%Y-%m-%dT%H:%M:%S"), random.getrandbits(32), random.randint(2, 90))
        try:
            os.write(out, line.encode())
        except OSError:
            pass  # best effort: tracing must never take the process down
        time.sleep(0.5)


if __name__ == "__main__":
    main()
