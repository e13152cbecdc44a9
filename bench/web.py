#!/usr/bin/env python3
"""Echo latency for a watcher: the candidate types (real `ssh` on a PTY) and two watchers
follow the same keystrokes, side by side in the same run: an interviewer over `ssh` (until
the bytes reach its terminal) and an observer's page in headless Chromium (until the
WebSocket message arrives, and until the text is in the page's DOM, which xterm.js updates
on the next animation frame). Every round is one keystroke burst both watchers see, so
the two are interleaved by construction.

Needs the release build, root, and Debian's chromium and chromium-driver. Prints a
Markdown table."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import SSH_OPTS, Daemon, Pty, percentile

ROUNDS = int(os.environ.get("TANDEM_BENCH_ROUNDS", "200"))
TASK_YAML = """name: echo
title: Echo
description: |
  Nothing to do.
difficulty: easy
time_limit: 30m
shell: /bin/bash --norc -i
env:
  PS1: 'box$ '
check: |
  true
solution: |
  true
"""

# Records when each wanted marker reached the page: as a WebSocket message, and in the DOM.
HOOK = """
window.__ws = {}; window.__dom = {}; window.__want = null;
const now = () => performance.timeOrigin + performance.now();
const rows = document.querySelector('.xterm-rows');
new MutationObserver(() => {
  const m = window.__want;
  if (m && !(m in window.__dom) && rows.textContent.includes(m)) window.__dom[m] = now();
}).observe(rows, {subtree: true, childList: true, characterData: true});
window.tandem.ws.addEventListener('message', (e) => {
  const m = window.__want;
  if (m && typeof e.data !== 'string' && !(m in window.__ws)
      && new TextDecoder().decode(e.data).includes(m)) window.__ws[m] = now();
});
return true;
"""


class WebDriver:
    """chromedriver on a free port, one headless Chromium session."""

    def __init__(self):
        self.proc = subprocess.Popen(["/usr/bin/chromedriver", "--port=0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            if "started successfully on port" in line:
                self.port = int(line.rsplit(" ", 1)[1].rstrip(".\n"))
                break
        self.profile = tempfile.mkdtemp(prefix="tandem-bench-chromium-")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "acceptInsecureCerts": True,
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,800", f"--user-data-dir={self.profile}"]}}}}
        self.session = self.call("POST", "/session", caps, base="")["sessionId"]

    def call(self, method, path, body=None, base=None):
        base = f"/session/{self.session}" if base is None else base
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{base}{path}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())["value"]

    def eval(self, script):
        return self.call("POST", "/execute/sync", {"script": script, "args": []})

    def stop(self):
        try:
            self.call("DELETE", "")
        finally:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


def stats(xs):
    return f"p50 {statistics.median(xs):.1f} ms · p99 {percentile(xs, 0.99):.1f} ms"


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (sandboxes)")
    work = tempfile.mkdtemp(prefix="tandem-bench-web-", dir="/var/tmp")
    tasks = os.path.join(work, "tasks")
    os.makedirs(os.path.join(tasks, "echo"))
    with open(os.path.join(tasks, "echo", "task.yaml"), "w") as f:
        f.write(TASK_YAML)
    daemon = browser = cand = ivy = None
    ssh_ms, ws_ms, dom_ms = [], [], []
    try:
        daemon = Daemon(work, tasks)
        daemon.wait(lambda: daemon.pool("echo").get("ready", 0) >= 1, "the warm sandbox")
        created = daemon.cli("session", "create", "--task", "echo")
        login = lambda role: ["ssh", *SSH_OPTS, "-p", str(daemon.ssh_port),
                              created["ssh"][role].split()[3].split("@")[0] + "@127.0.0.1"]
        cand = Pty(login("candidate"))
        cand.wait_for(b"box$ ")
        ivy = Pty(login("interviewer"))
        ivy.wait_for(b"box$ ")
        browser = WebDriver()
        browser.call("POST", "/url", {"url": created["web"]["observer"]})
        daemon.wait(lambda: browser.eval("return document.body.dataset.state") == "live"
                    and "box$" in browser.eval(
                        "return document.querySelector('.xterm-rows').textContent"),
                    "the observer's page")
        browser.eval(HOOK)
        for i in range(ROUNDS):
            marker = f"k{i:04d}q"
            browser.eval(f"window.__want = '{marker}'; return true;")
            sent_epoch = time.time() * 1000
            sent = time.perf_counter()
            os.write(cand.fd, marker.encode())
            ivy.wait_for(marker.encode())
            ssh_ms.append((time.perf_counter() - sent) * 1000)
            got = None
            deadline = time.time() + 10
            while time.time() < deadline:
                got = browser.eval(
                    f"return [window.__ws['{marker}'], window.__dom['{marker}']];")
                if got[0] and got[1]:
                    break
                time.sleep(0.005)  # a benchmark's poll of the page, not a test's sync
            ws_ms.append(got[0] - sent_epoch)
            dom_ms.append(got[1] - sent_epoch)
            # Erase the line (Ctrl-U) so that the prompt line never wraps.
            os.write(cand.fd, b"\x15")
            ivy.wait_for(b"\x1b[K")
    finally:
        for p in (cand, ivy):
            if p:
                p.close()
        if browser:
            browser.stop()
        if daemon:
            daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(ssh_ms)
    print(f"| keystroke echo to a watcher, ×{ROUNDS} (same keystrokes, both watchers at once) | result | ratio to ssh (p50) |")
    print("|---|---|---|")
    print(f"| interviewer over `ssh` (bytes in its terminal) | {stats(ssh_ms)} | 1.0× |")
    print(f"| observer's page: WebSocket message arrived | {stats(ws_ms)} | {statistics.median(ws_ms) / base:.1f}× |")
    print(f"| **observer's page: text in the DOM** (xterm.js, next animation frame) | {stats(dom_ms)} | **{statistics.median(dom_ms) / base:.1f}×** |")


if __name__ == "__main__":
    main()
