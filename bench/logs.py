#!/usr/bin/env python3
"""Log streaming: one job writes SIZE bytes; N followers (`tandem job logs -f`, each its
own CLI process and mTLS connection) read all of it, vs N concurrent `ssh root@127.0.0.1
cat FILE` of a file of the same size through a private OpenSSH sshd. Throughput is N ×
SIZE / time until the last reader has everything; the daemon's peak RSS is its VmHWM.

Run as root from the repository (bench/run.sh does). TANDEM_BENCH_LOG_MIB sets SIZE
(default 1024 for 1 and 10 followers; 100 followers get a tenth of it each, so that every
row moves at most 10 GiB). Prints Markdown table rows.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import TANDEM, Daemon, OpenSsh

MIB = int(os.environ.get("TANDEM_BENCH_LOG_MIB", "1024"))


def tandem_followers(work, n, size):
    """A fresh daemon per row (so its peak RSS is the row's): start the job, then n
    followers from offset 0; seconds until all have size bytes, and the peak RSS."""
    daemon = Daemon(os.path.join(work, f"d{n}"), args=("--output-cap", str(size + (1 << 20))))
    try:
        job = daemon.cli("job", "start", "--", "/bin/sh", "-c",
                         f"head -c {size} /dev/zero | tr '\\0' x")
        job_id = job["id"] if isinstance(job, dict) else job
        start = time.perf_counter()
        readers = [subprocess.Popen(
            [TANDEM, "--server", daemon.grpc, "--certs-dir", os.path.join(daemon.work, "certs"),
             "job", "logs", "-f", job_id], stdout=subprocess.PIPE) for _ in range(n)]
        counts = [count_bytes(r) for r in readers]
        elapsed = time.perf_counter() - start
        if any(c != size for c in counts):
            raise RuntimeError(f"followers read {counts}, expected {size}")
        return elapsed, daemon.peak_rss_kib()
    finally:
        daemon.stop()


def count_bytes(proc):
    total = 0
    while True:
        chunk = proc.stdout.read1(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    proc.wait()
    return total


def ssh_cats(sshd, path, n, size):
    start = time.perf_counter()
    readers = [subprocess.Popen(sshd.command("cat", path), stdout=subprocess.PIPE)
               for _ in range(n)]
    counts = [count_bytes(r) for r in readers]
    elapsed = time.perf_counter() - start
    if any(c != size for c in counts):
        raise RuntimeError(f"ssh cat read {counts}, expected {size}")
    return elapsed


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    work = tempfile.mkdtemp(prefix="tandem-bench-logs-", dir="/var/tmp")
    sshd = None
    print(f"| log streaming (interleaved per row) | tandem `job logs -f` | tandemd peak RSS | "
          f"OpenSSH `ssh cat` | ratio (throughput) |")
    print("|---|---|---|---|---|")
    try:
        sshd = OpenSsh(work)
        for n in (1, 10, 100):
            # Whole MiB (the ssh side's file is written a MiB at a time).
            size = (MIB if n < 100 else max(1, MIB // 10)) << 20
            path = os.path.join(work, f"data-{size}")
            with open(path, "wb") as f:
                f.truncate(0)
                block = b"x" * (1 << 20)
                for _ in range(size >> 20):
                    f.write(block)
            os.makedirs(os.path.join(work, f"d{n}"), exist_ok=True)
            t_tandem, rss = tandem_followers(work, n, size)
            t_ssh = ssh_cats(sshd, path, n, size)
            os.unlink(path)
            mib = n * size / (1 << 20)
            print(f"| {n} × {size >> 20} MiB | {mib / t_tandem:.0f} MiB/s ({t_tandem:.1f} s) | "
                  f"{rss / 1024:.0f} MiB | {mib / t_ssh:.0f} MiB/s ({t_ssh:.1f} s) | "
                  f"{t_ssh / t_tandem:.2f}× |")
    finally:
        if sshd:
            sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
