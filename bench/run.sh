#!/usr/bin/env bash
# Every benchmark, as root on a fresh Debian machine (about 10 minutes on 2 cores):
# installs the comparison tools (bubblewrap, crun, openssh-server, tmux) with apt, builds
# tandem in release mode, runs each benchmark (each measures tandem and its anchors
# interleaved, in the same run) and writes the results between the markers of
# docs/BENCHMARKS.md ("Latest full run"), with the date, the machine and the versions.
#
#   bench/worker.sh          isolated start vs bwrap, crun, fork+exec; CLI start; 1000 idle jobs
#   bench/ssh.sh             keystroke echo and output bursts vs OpenSSH sshd + shared tmux
#   bench/session_ready.py   session create → candidate's prompt, warm and cold, vs an OpenSSH login
#   bench/logs.py            log streaming to 1/10/100 followers vs concurrent `ssh cat`
#   bench/web.py             keystroke echo to a watcher in the browser vs one over ssh
#   bench/command_marks.py   per-command cost of the sandbox's shell profile (timeline marks)
#
# BENCH_ONLY="worker ssh" runs some of them; the others' results stay as they were.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: run as root (sandboxes, cgroups, sshd)" >&2; exit 2; }

missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v crun >/dev/null || missing+=(crun)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v tmux >/dev/null || missing+=(tmux)
command -v bc >/dev/null || missing+=(bc)
command -v python3 >/dev/null || missing+=(python3)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    # No service is started: the benchmarks run their own private sshd.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cargo build --release --locked -q -p tandemd -p tandem
cargo build --release --locked -q -p tandem-worker --bin tandem-init

only=${BENCH_ONLY:-worker ssh session logs web marks}
out=$(mktemp -d /var/tmp/tandem-bench-run-XXXXXX)
trap 'rm -rf "$out"' EXIT
run() {
    local name=$1
    shift
    case " $only " in *" $name "*) ;; *) return 0 ;; esac
    echo "bench/run.sh: $name ($*)" >&2
    local start=$SECONDS
    "$@" > "$out/$name.md"
    echo "bench/run.sh: $name took $((SECONDS - start)) s" >&2
}
run worker bench/worker.sh
run ssh bench/ssh.sh
run session python3 bench/session_ready.py
run logs python3 bench/logs.py
run web python3 bench/web.py
run marks python3 bench/command_marks.py

python3 - "$out" "$only" <<'PY'
import os, platform, re, subprocess, sys
out, only = sys.argv[1], sys.argv[2].split()
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"
mem = int(open("/proc/meminfo").read().split()[1]) // (1024 * 1024)
cgroup = "v2" if sh("stat -fc %T /sys/fs/cgroup") == "cgroup2fs" else "v1 (hybrid)" if os.path.isdir("/sys/fs/cgroup/unified") else "v1"
head = (f"Run {sh('date -u +%FT%TZ')} on {os.cpu_count()} CPUs, {mem} GiB, Linux {platform.release()}, "
        f"cgroup {cgroup}; {sh('git rev-parse --short HEAD')}; {sh('rustc --version')}; "
        f"{sh('bwrap --version')}; {sh('crun --version')}; {sh('ssh -V 2>&1')}; {sh('tmux -V')}.")
titles = {
    "worker": "Isolated start, CLI start, idle jobs (`bench/worker.sh`)",
    "ssh": "Shared terminal vs OpenSSH + tmux (`bench/ssh.sh`)",
    "session": "Session ready (`bench/session_ready.py`)",
    "logs": "Log streaming (`bench/logs.py`)",
    "web": "Echo to a watcher: browser vs ssh (`bench/web.py`)",
    "marks": "Command marks in the candidate's shell (`bench/command_marks.py`)",
}
doc_path = "docs/BENCHMARKS.md"
doc = open(doc_path).read()
begin, end = "<!-- bench/run.sh: begin -->", "<!-- bench/run.sh: end -->"
if begin in doc:
    before, rest = doc.split(begin, 1)
    old, after = rest.split(end, 1)
else:
    before, old, after = doc.rstrip() + "\n\n## Latest full run (`bench/run.sh`)\n\n", "", "\n"
# Each section: a marker naming it, its heading and its table; kept when not rerun.
sections = dict(re.findall(r"<!-- section: (\w+) -->\n(.*?)(?=<!-- section: |\Z)", old, re.S))
for name in only:
    path = os.path.join(out, f"{name}.md")
    if os.path.exists(path):
        sections[name] = f"### {titles[name]}\n\n" + open(path).read().strip() + "\n\n"
body = "\n" + head + "\n\n" + "".join(
    f"<!-- section: {n} -->\n{sections[n]}" for n in titles if n in sections)
open(doc_path, "w").write(before + begin + body + end + after)
print(f"bench/run.sh: wrote {doc_path}", file=sys.stderr)
PY
