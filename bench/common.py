"""Shared pieces of the Python benchmarks: a real tandemd on free ports (release build),
the tandem CLI, a private OpenSSH sshd on loopback, and a PTY reader that waits for text."""

import fcntl
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import termios
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEMD = os.path.join(ROOT, "target/release/tandemd")
TANDEM = os.path.join(ROOT, "target/release/tandem")
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


class Pty:
    """A program on a new PTY, read as it goes."""

    def __init__(self, argv):
        self.name = argv[0]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                # A terminal of 80x24, as a person's would have (a new PTY is 0x0).
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        self.seen = b""

    def wait_for(self, needle, timeout=60.0):
        """Reads until `needle` appears after what earlier waits matched; returns the time
        that took (seconds). What came after the match is kept for the next wait."""
        start = time.perf_counter()
        while needle not in self.seen:
            left = timeout - (time.perf_counter() - start)
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {needle!r} in {self.seen[-300:]!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise RuntimeError(f"{self.name} ended: {self.seen[-300:]!r}")
            self.seen += chunk
        self.seen = self.seen[self.seen.index(needle) + len(needle):]
        return time.perf_counter() - start

    def close(self):
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def until_prompt(argv, needle, timeout=60.0):
    """Runs argv on a new PTY until `needle` appears; returns seconds from the spawn. The
    child is killed afterwards."""
    start = time.perf_counter()
    p = Pty(argv)
    try:
        p.wait_for(needle, timeout)
        return time.perf_counter() - start
    finally:
        p.close()


class Daemon:
    """tandemd (release) with its directories under `work`; `tasks` is a tasks directory
    (or None: an empty one); `args` are extra flags."""

    def __init__(self, work, tasks=None, args=()):
        self.work = work
        self.grpc = f"127.0.0.1:{free_port()}"
        self.ssh_port = free_port()
        self.web_port = free_port()
        if tasks is None:
            tasks = os.path.join(work, "tasks")
            os.makedirs(tasks, exist_ok=True)
        self.log = open(os.path.join(work, "tandemd.log"), "w")
        self.proc = subprocess.Popen(
            [TANDEMD, "--grpc-listen", self.grpc, "--ssh-listen", f"127.0.0.1:{self.ssh_port}",
             "--web-listen", f"127.0.0.1:{self.web_port}",
             "--state-dir", os.path.join(work, "state"), "--certs-dir", os.path.join(work, "certs"),
             "--tasks-dir", tasks, "--log-format", "json", *args],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.wait(self.healthy, "tandemd to answer")

    def healthy(self):
        try:
            self.cli("health")
            return True
        except (RuntimeError, json.JSONDecodeError):
            return False

    def peak_rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

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
                    "StrictModes no\n"
                    # 100 concurrent logins in the log benchmark.
                    "MaxStartups 200\nMaxSessions 200\n")
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

    def command(self, *args):
        """`ssh … root@127.0.0.1 args` (no terminal) as an argv."""
        return ["ssh", *[o for o in SSH_OPTS if o != "-tt"], "-i", self.key, "-p",
                str(self.port), "root@127.0.0.1", *args]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)




def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]
