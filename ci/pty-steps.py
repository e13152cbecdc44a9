#!/usr/bin/python3
"""Runs a command (e.g. `ssh -tt …`) on a real pseudo-terminal and plays steps against it,
like a person at a keyboard: ci/compose-smoke.sh logs in to a session with it.

Usage: pty-steps.py TRANSCRIPT DEADLINE_SECONDS -- COMMAND [ARG…]  <steps
Steps, one a line:
  send TEXT      types TEXT and Enter
  expect TEXT    waits until TEXT appears in the output after the last `expect`
Everything the terminal shows is written to TRANSCRIPT. Exit status 0 when every step
passed within the deadline (for all of them together); 1, with the tail of what was seen,
when one did not.
"""
import os
import pty
import select
import signal
import sys
import time


def main():
    transcript, deadline_s, sep, *command = sys.argv[1:]
    if sep != "--" or not command:
        sys.exit(__doc__)
    steps = [line.rstrip("\n").split(" ", 1) for line in sys.stdin if line.strip()]
    deadline = time.monotonic() + float(deadline_s)
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    seen = b""
    start = 0  # where the next `expect` starts looking
    ok = True
    with open(transcript, "wb") as out:

        def read_some(timeout):
            nonlocal seen
            r, _, _ = select.select([fd], [], [], timeout)
            if not r:
                return True
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                return False
            out.write(data)
            out.flush()
            seen += data
            return True

        for step in steps:
            verb, text = step[0], (step[1] if len(step) > 1 else "")
            if verb == "send":
                os.write(fd, text.encode() + b"\r")
            elif verb == "expect":
                want = text.encode()
                while want not in seen[start:]:
                    left = deadline - time.monotonic()
                    if left <= 0 or not read_some(min(left, 1.0)):
                        print(f"pty-steps: did not see {text!r} (deadline {deadline_s}s or "
                              f"end of output); the last of the terminal:", file=sys.stderr)
                        print(seen[-3000:].decode(errors="replace"), file=sys.stderr)
                        ok = False
                        break
                if not ok:
                    break
                start = seen.index(want, start) + len(want)
            else:
                sys.exit(f"pty-steps: unknown step {verb!r}")
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    os.close(fd)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
