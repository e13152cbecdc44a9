"""What the sandbox's shell profile (command marks for the timeline, `hint`) costs the
candidate per command: an interactive bash on a PTY, without the profile, with it, and
with the first version of it (the command's text taken with `$(history 1)` in PS0: a fork
per command), each command timed from Enter to the next prompt, interleaved command by
command (A, B, C, A, B, C; the order rotates).

Prints a Markdown table. The profile is read from crates/worker/src/system_view.rs
(`TANDEM_PROFILE`), the bash is the host's (the sandbox runs the host's /usr)."""

import os
import re
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, Pty  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "300"))
COMMANDS = {"true": "true", "ls": "ls /usr/bin >/dev/null"}


def profile():
    src = open(os.path.join(ROOT, "crates/worker/src/system_view.rs")).read()
    return re.search(r'TANDEM_PROFILE: &str = r#"(.*?)"#;', src, re.S).group(1)


# The first version's marks: the text at the start, through a command substitution.
FORKING = r"""
__tandem_start() {
    local c
    c=$(HISTTIMEFORMAT= builtin history 1)
    c=${c#*[0-9]  }
    builtin printf '\033]6973;C;%s;%s\007' "${PWD//[[:cntrl:];]/ }" "${c//[[:cntrl:]]/ }"
}
__tandem_end() { builtin printf '\033]6973;D;%s\007' "$1"; }
PS0='$(__tandem_start)'
PROMPT_COMMAND="__tandem_end \$?"
"""


def shell(rcfile):
    # The prompt carries the command number (\\#): each wait matches its own prompt.
    env_ps1 = "PS1='@@\\#@@ '"
    argv = ["env", "-i", "TERM=xterm-256color", "PATH=/usr/bin:/bin", "HOME=/tmp",
            "bash", "--noprofile", "--rcfile", rcfile, "-i"]
    with open(rcfile, "a") as f:
        f.write(env_ps1 + "\n")
    p = Pty(argv)
    p.wait_for(b"@@1@@ ")
    p.n = 1
    return p


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    tmp = tempfile.mkdtemp(prefix="tandem-bench-marks-")
    plain_rc = os.path.join(tmp, "plain.rc")
    marks_rc = os.path.join(tmp, "marks.rc")
    forking_rc = os.path.join(tmp, "forking.rc")
    open(plain_rc, "w").close()
    with open(marks_rc, "w") as f:
        f.write(profile())
    with open(forking_rc, "w") as f:
        f.write(FORKING)
    shells = {"plain": shell(plain_rc), "marks": shell(marks_rc), "forking": shell(forking_rc)}
    times = {(k, c): [] for k in shells for c in COMMANDS}
    load = os.getloadavg()[0]
    for i in range(ROUNDS):
        for cname, cmd in COMMANDS.items():
            kinds = list(shells)
            order = kinds[i % 3:] + kinds[:i % 3]
            for k in order:
                p = shells[k]
                os.write(p.fd, (cmd + "\r").encode())
                p.n += 1
                times[(k, cname)].append(p.wait_for(b"@@%d@@ " % p.n) * 1000)
    for p in shells.values():
        p.close()
    print(f"{ROUNDS} commands of each kind per shell, interleaved; load average before: {load:.1f}\n")
    print("| command | plain bash p50 · p99 | tandem profile p50 · p99 (added) "
          "| first version, fork per command p50 · p99 (added) |")
    print("|---|---|---|---|")
    for cname, cmd in COMMANDS.items():
        a = times[("plain", cname)]
        cells = [f"{statistics.median(a):.2f} ms · {pct(a, 0.99):.2f} ms"]
        for k in ("marks", "forking"):
            b = times[(k, cname)]
            cells.append(f"{statistics.median(b):.2f} ms · {pct(b, 0.99):.2f} ms "
                         f"({statistics.median(b) - statistics.median(a):+.2f} ms)")
        print(f"| `{cmd}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
