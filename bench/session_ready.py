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

import json
import os
import pty
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEMD = os.path.join(ROOT, "target/release/tandemd")
TANDEM = os.path.join(ROOT, "target/release/tandem")
TASK = os.environ.get("TANDEM_BENCH_TASK", "disk-full")
RUNS = int(os.environ.get("TANDEM_BENCH_RUNS", "15"))
SSH_OPTS = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ControlMaster=no",
    "-o", "ControlPath=none",
    "-tt",
]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until_prompt(argv, needle, timeout=60.0):
    """Runs argv on a new PTY until `needle` appears after the output so far; returns
    seconds from the spawn. The child is killed afterwards."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    seen = b""
    try:
        while True:
            left = timeout - (time.perf_counter() - start)
            if left <= 0:
                raise TimeoutError(f"{argv[0]}: no {needle!r} in {seen[-300:]!r}")
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                raise RuntimeError(f"{argv[0]} ended: {seen[-300:]!r}")
            if not chunk:
                raise RuntimeError(f"{argv[0]} ended: {seen[-300:]!r}")
            seen += chunk
            if needle in seen:
                return time.perf_counter() - start
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)


class Daemon:
    def __init__(self, work):
        self.work = work
        self.grpc = f"127.0.0.1:{free_port()}"
        self.ssh_port = free_port()
        tasks = os.path.join(work, "tasks")
        shutil.copytree(os.path.join(ROOT, "tasks", TASK), os.path.join(tasks, TASK))
        cold = os.path.join(tasks, TASK + "-cold")
        shutil.copytree(os.path.join(ROOT, "tasks", TASK), cold)
        with open(os.path.join(cold, "task.yaml")) as f:
            yaml = f.read().replace(f"name: {TASK}\n", f"name: {TASK}-cold\n", 1)
        with open(os.path.join(cold, "task.yaml"), "w") as f:
            f.write(yaml + "warm: 0\n")
        self.log = open(os.path.join(work, "tandemd.log"), "w")
        self.proc = subprocess.Popen(
            [TANDEMD, "--grpc-listen", self.grpc, "--ssh-listen", f"127.0.0.1:{self.ssh_port}",
             "--state-dir", os.path.join(work, "state"), "--certs-dir", os.path.join(work, "certs"),
             "--tasks-dir", tasks, "--log-format", "json"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.wait(lambda: self.pool(TASK).get("ready", 0) >= 1, "the first warm sandbox")

    def cli(self, *args):
        out = subprocess.run(
            [TANDEM, "--server", self.grpc, "--certs-dir", os.path.join(self.work, "certs"),
             "-o", "json", *args], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"tandem {' '.join(args)}: {out.stderr}")
        return json.loads(out.stdout) if out.stdout.strip() else None

    def pool(self, task):
        try:
            tasks = self.cli("task", "list")
        except (RuntimeError, json.JSONDecodeError):
            return {}
        return next((t.get("warm") or {} for t in tasks if t["name"] == task), {})

    def wait(self, done, what, timeout=120):
        end = time.time() + timeout
        while not done():
            if time.time() > end:
                raise TimeoutError(what)
            time.sleep(0.05)  # a benchmark's poll, not a test's synchronisation

    def session_ready(self, task):
        """Seconds from `session create` to the candidate's prompt."""
        start = time.perf_counter()
        created = self.cli("session", "create", "--task", task)
        token = created["ssh"]["candidate"].split()[3].split("@")[0]
        # The task's greeting is printed by the login shell, then its prompt ends in "# ".
        after = until_prompt(
            ["ssh", *SSH_OPTS, "-p", str(self.ssh_port), f"{token}@127.0.0.1"], b"# ")
        total = time.perf_counter() - start
        self.cli("session", "end", created["id"])
        return total, total - after

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()


class OpenSsh:
    def __init__(self, work):
        self.port = free_port()
        self.key = os.path.join(work, "id_ed25519")
        host = os.path.join(work, "ssh_host_ed25519_key")
        for path in (self.key, host):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
        keys = os.path.join(work, "authorized_keys")
        shutil.copy(self.key + ".pub", keys)
        os.chmod(keys, 0o600)
        config = os.path.join(work, "sshd_config")
        with open(config, "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host}\n"
                    f"AuthorizedKeysFile {keys}\nPermitRootLogin prohibit-password\n"
                    "PasswordAuthentication no\nUsePAM no\nPidFile none\nUseDNS no\n"
                    # The files live under /var/tmp (mode 1777).
                    "StrictModes no\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", config],
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                until_prompt(self.argv(), b"# ", timeout=5)
                return
            except (RuntimeError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError("sshd did not start")

    def argv(self):
        return ["ssh", *SSH_OPTS, "-i", self.key, "-p", str(self.port), "root@127.0.0.1"]

    def login(self):
        return until_prompt(self.argv(), b"# ")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def row(name, xs):
    xs = sorted(xs)
    p50 = statistics.median(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return p50, p90, f"p50 {p50 * 1000:.0f} ms · p90 {p90 * 1000:.0f} ms"


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (sandboxes and sshd)")
    work = tempfile.mkdtemp(prefix="tandem-bench-session-", dir="/var/tmp")
    daemon = sshd = None
    warm, cold, openssh, warm_create, cold_create = [], [], [], [], []
    try:
        daemon = Daemon(work)
        sshd = OpenSsh(work)
        for _ in range(RUNS):
            daemon.wait(lambda: daemon.pool(TASK).get("ready", 0) >= 1, "the pool to refill")
            total, create = daemon.session_ready(TASK)
            warm.append(total)
            warm_create.append(create)
            total, create = daemon.session_ready(TASK + "-cold")
            cold.append(total)
            cold_create.append(create)
            openssh.append(sshd.login())
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


if __name__ == "__main__":
    main()
