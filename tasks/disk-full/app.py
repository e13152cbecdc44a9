#!/usr/bin/python3
"""inventory: keeps the stock counts in memory and persists them to /data/app.db every second."""
import json
import os
import sys
import time

DB = "/data/app.db"


def log(msg):
    print(time.strftime("%Y-%m-%dT%H:%M:%S"), msg, flush=True)


def save(state):
    tmp = DB + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, DB)
        return None
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return e


def main():
    state = {"widgets": 1200, "gadgets": 310, "saves": 0}
    try:
        with open(DB) as f:
            state.update(json.load(f))
    except (OSError, ValueError):
        pass
    log(f"inventory started (pid {os.getpid()}), persisting to {DB}")
    failing = False
    while True:
        state["saves"] += 1
        state["saved_at"] = time.time()
        err = save(state)
        if err and not failing:
            log(f"ERROR cannot persist state to {DB}: {err}")
        elif err:
            log(f"ERROR still cannot persist state: {err.strerror}")
        elif failing:
            log("state persisted again, recovered")
        failing = err is not None
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
