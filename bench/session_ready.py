#!/usr/bin/env python3
"""Session ready: from "create a session" to the candidate's first prompt over real ssh.

Measured side by side, interleaved (warm, cold, OpenSSH; repeat):
  warm     `tandem session create` of a task whose warm pool has a sandbox ready, then
           `ssh -p PORT TOKEN@localhost` on a PTY until the shell's prompt is on screen
  cold     the same for a copy of the task with `warm: 0` (sandbox + setup + shell)
  openssh  `ssh -p PORT root@localhost` to a private OpenSSH sshd (key login, same client
           options) on a PTY until the prompt: logging in to a box that already exists

Run as root from the repository (bench/run.sh does): needs release builds of tandemd and
tandem, and /usr/sbin/sshd (openssh-server). Prints Markdown table rows.
"""

import os
import shutil
import statistics
import sys
import tempfile
import time

from common import ROOT, SSH_OPTS, Daemon, OpenSsh, Pty, percentile, until_prompt

TASK = os.environ.get("TANDEM_BENCH_TASK", "disk-full")
RUNS = int(os.environ.get("TANDEM_BENCH_RUNS", "15"))


def tasks_dir(work):
    """The task, and a copy of it with `warm: 0`."""
    tasks = os.path.join(work, "tasks")
    shutil.copytree(os.path.join(ROOT, "tasks", TASK), os.path.join(tasks, TASK))
    cold = os.path.join(tasks, TASK + "-cold")
    shutil.copytree(os.path.join(ROOT, "tasks", TASK), cold)
    with open(os.path.join(cold, "task.yaml")) as f:
        yaml = f.read().replace(f"name: {TASK}\n", f"name: {TASK}-cold\n", 1)
    with open(os.path.join(cold, "task.yaml"), "w") as f:
        f.write(yaml + "warm: 0\n")
    return tasks


def session_ready(daemon, task):
    """Seconds from `session create` to the candidate's prompt, and of that the create."""
    start = time.perf_counter()
    created = daemon.cli("session", "create", "--task", task)
    token = created["ssh"]["candidate"].split()[3].split("@")[0]
    # The task's greeting is printed by the login shell, then its prompt ends in "# ".
    after = until_prompt(
        ["ssh", *SSH_OPTS, "-p", str(daemon.ssh_port), f"{token}@127.0.0.1"], b"# ")
    total = time.perf_counter() - start
    daemon.cli("session", "end", created["id"])
    return total, total - after


def reset_times(daemon, runs):
    """One session with its candidate connected; `runs` resets, each from `tandem session
    reset` until the candidate's terminal shows the fresh box's prompt (the pool refilled
    before each)."""
    created = daemon.cli("session", "create", "--task", TASK)
    token = created["ssh"]["candidate"].split()[3].split("@")[0]
    cand = Pty(["ssh", *SSH_OPTS, "-p", str(daemon.ssh_port), f"{token}@127.0.0.1"])
    times = []
    try:
        cand.wait_for(b"# ")
        for _ in range(runs):
            daemon.wait(lambda: daemon.pool(TASK).get("ready", 0) >= 1, "the pool to refill")
            start = time.perf_counter()
            reset = daemon.cli("session", "reset", created["id"])
            assert reset["instance"]["warm"], reset
            cand.wait_for(b"this is a fresh one")
            cand.wait_for(b"# ")
            times.append(time.perf_counter() - start)
    finally:
        cand.close()
        daemon.cli("session", "end", created["id"])
    return times


def row(name, xs):
    p50 = statistics.median(xs)
    p90 = percentile(xs, 0.9)
    return p50, p90, f"p50 {p50 * 1000:.0f} ms · p90 {p90 * 1000:.0f} ms"


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (sandboxes and sshd)")
    work = tempfile.mkdtemp(prefix="tandem-bench-session-", dir="/var/tmp")
    daemon = sshd = None
    warm, cold, openssh, warm_create, cold_create, resets = [], [], [], [], [], []
    try:
        daemon = Daemon(work, tasks_dir(work))
        sshd = OpenSsh(work)
        daemon.wait(lambda: daemon.pool(TASK).get("ready", 0) >= 1, "the first warm sandbox")
        for _ in range(RUNS):
            daemon.wait(lambda: daemon.pool(TASK).get("ready", 0) >= 1, "the pool to refill")
            total, create = session_ready(daemon, TASK)
            warm.append(total)
            warm_create.append(create)
            total, create = session_ready(daemon, TASK + "-cold")
            cold.append(total)
            cold_create.append(create)
            openssh.append(sshd.login())
        resets = reset_times(daemon, RUNS)
    finally:
        if sshd:
            sshd.stop()
        if daemon:
            daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    o50, _, o_text = row("openssh", openssh)
    w50, _, w_text = row("warm", warm)
    c50, _, c_text = row("cold", cold)
    print(f"| session ready, task `{TASK}`, ×{RUNS} interleaved | result | ratio to OpenSSH (p50) |")
    print("|---|---|---|")
    print(f"| OpenSSH login to an existing box (sshd, key, `ssh -tt` until the prompt) | {o_text} | 1.0× |")
    print(f"| **tandem, warm**: `tandem session create` + candidate `ssh` until the prompt | {w_text} | **{w50 / o50:.1f}×** |")
    print(f"|   of which `session create` (CLI, mTLS) | {row('', warm_create)[2]} | |")
    print(f"| tandem, cold (`warm: 0`: sandbox, setup, shell) | {c_text} | {c50 / o50:.1f}× |")
    print(f"|   of which `session create` | {row('', cold_create)[2]} | |")
    print(f"| **reset** (warm): `tandem session reset` until the candidate sees the fresh prompt | {row('', resets)[2]} | |")


if __name__ == "__main__":
    main()
