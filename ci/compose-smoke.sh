#!/usr/bin/env bash
# The Docker Compose smoke: builds the image, starts tandemd with compose.yaml and runs an
# interview through the container, from the host, as a person would:
#   - `tandem health`, `session create`, a real `ssh -p 2222 TOKEN@localhost` on a
#     pseudo-terminal that types a marker and sees it echoed;
#   - the task's check says "not solved", the candidate types the task's solution, the
#     check says "solved";
#   - the escape probes (tests/probes/escape.py) as the container's root (what gets
#     through there is a target) and then as a candidate: every one is stopped;
#   - `down` then `up` again: the first session's recording is still served (the volume).
# Then it removes what it made: containers, volume, network, the image it built, the base
# image it made, its directory, and the dockerd it started.
#
# The image is docker/Dockerfile's runtime stage plus the debug binaries
# (docker/prebuilt.Dockerfile; built here if missing: the CI already has them from its
# tests), not the release build users get from the default target: the same runtime
# stage, entrypoint and compose settings, without a release compile in CI. When no
# container registry is reachable, the base image is made with mmdebstrap. Where
# `privileged: true` is refused, compose.noprivileged.yaml is added.
# TANDEM_SMOKE_BASE_IMAGE names another base image (kept); TANDEM_SMOKE_BINARIES another
# directory of binaries inside the repository (e.g. target/release).
# Run as root, from anywhere; installs docker.io, docker-compose and mmdebstrap with apt
# when missing. 1.5 to 2.5 minutes on 2 shared cores from a stopped dockerd, no images.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
t0=$(date +%s)
say() { echo "compose-smoke [$(($(date +%s) - t0))s] $*"; }
die() {
    say "FAILED: $*"
    exit 1
}

# Polls `$@` every half second until it succeeds or `deadline` seconds pass.
wait_for() {
    local deadline=$1 what=$2
    shift 2
    local end=$(($(date +%s) + deadline))
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || die "$what: not within ${deadline}s"
        sleep 0.5
    done
}

# --- tools ----------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v ssh >/dev/null || missing+=(openssh-client)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    missing+=(docker-compose)
fi
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)
else
    compose_cmd=(docker-compose)
fi

work=$(mktemp -d /var/tmp/tandem-compose-smoke.XXXXXX)
project=tandem-smoke
started_dockerd=
made_base=
made_runtime=
compose_files=(-f compose.yaml)

cleanup() {
    local rc=$?
    set +e
    if [ -n "${compose_ready:-}" ]; then
        if [ "$rc" != 0 ]; then
            say "tandemd's log (the last 60 lines):"
            "${compose_cmd[@]}" "${compose_files[@]}" -p "$project" logs --no-color --tail 60
        fi
        "${compose_cmd[@]}" "${compose_files[@]}" -p "$project" down -v --rmi all \
            --remove-orphans >/dev/null 2>&1
    fi
    [ -n "$made_runtime" ] && docker rmi "$made_runtime" >/dev/null 2>&1
    [ -n "$made_base" ] && docker rmi "$made_base" >/dev/null 2>&1
    if [ -n "$started_dockerd" ]; then
        kill "$started_dockerd" 2>/dev/null
        # dockerd stops its containerd and exits; no fixed sleep, a bounded wait.
        for _ in $(seq 100); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -rf "$work"
    say "cleaned up; exit $rc"
}
trap cleanup EXIT

# --- dockerd --------------------------------------------------------------------------
docker_answers() { docker info >/dev/null 2>&1; }
if ! docker_answers; then
    say "starting dockerd (none runs)"
    dockerd --pidfile "$work/dockerd.pid" >"$work/dockerd.log" 2>&1 &
    started_dockerd=$!
    wait_for 60 "dockerd answers" docker_answers
fi
say "docker $(docker version -f '{{.Server.Version}}'), ${compose_cmd[*]} $("${compose_cmd[@]}" version --short 2>/dev/null || true)"

# --- binaries (docker/prebuilt.Dockerfile takes them from the build context) ---------
bins=${TANDEM_SMOKE_BINARIES:-target/debug}
if [ ! -x "$bins/tandemd" ] || [ ! -x "$bins/tandem" ]; then
    [ "$bins" = target/debug ] || die "no tandemd and tandem in $bins"
    say "building the debug binaries"
    cargo build --locked -p tandemd -p tandem
fi
export TANDEM_SMOKE_BINARIES=$bins
tandem=("$repo/$bins/tandem" --certs-dir "$work/certs")

# --- base image -----------------------------------------------------------------------
base=${TANDEM_SMOKE_BASE_IMAGE:-debian:bookworm-slim}
if docker image inspect "$base" >/dev/null 2>&1; then
    say "base image $base: present"
elif docker pull -q "$base" >/dev/null 2>&1; then
    say "base image $base: pulled"
    made_base=$base
else
    base=tandem-smoke/debian:bookworm-slim
    say "no registry reachable: making $base with mmdebstrap"
    mmdebstrap --quiet --variant=minbase bookworm "$work/rootfs.tar"
    docker import "$work/rootfs.tar" "$base" >/dev/null
    made_base=$base
    rm -f "$work/rootfs.tar"
fi

# compose.yaml publishes these on the host.
for port in 2222 50051 8443; do
    if ss -ltnH "sport = :$port" | grep -q .; then
        die "port $port is in use on this host (compose.yaml publishes it): stop what listens there"
    fi
done

# --- privileged, or the override ------------------------------------------------------
if docker run --rm --privileged "$base" true >/dev/null 2>&1; then
    say "privileged containers run here: compose.yaml as is"
else
    say "privileged is refused here: adding compose.noprivileged.yaml"
    compose_files+=(-f compose.noprivileged.yaml)
fi
compose_files+=(-f ci/compose.smoke.yaml)

# The PKI (tandemd makes it at first start) and the tasks: the shipped ones and `demo`,
# which carries the escape probes into its sandboxes.
mkdir -p "$work/certs" "$work/tasks/demo"
cp -r tasks/. "$work/tasks/"
cp tests/probes/escape.py "$work/tasks/demo/escape.py"
cat >"$work/tasks/demo/task.yaml" <<'EOF'
name: demo
title: The escape probes' task (compose smoke)
description: |
  A shell whose sandbox carries the escape probes.
difficulty: easy
time_limit: 10m
shell: /bin/bash --norc -i
env:
  PS1: 'demo$ '
limits:
  memory: 256M
  pids: 64
  disk: 64M
files:
  - path: /opt/probes/escape.py
    source: escape.py
    mode: "0755"
check: |
  test -f /tmp/solved
solution: |
  touch /tmp/solved
EOF
runtime=tandem-smoke:runtime
export TANDEM_SMOKE_RUNTIME_IMAGE=$runtime TANDEM_SMOKE_CERTS=$work/certs TANDEM_SMOKE_TASKS=$work/tasks
compose() { "${compose_cmd[@]}" "${compose_files[@]}" -p "$project" "$@"; }

healthy() {
    local id
    id=$(compose ps -q tandemd)
    [ -n "$id" ] || return 1
    case "$(docker inspect -f '{{.State.Status}} {{.State.Health.Status}}' "$id")" in
    "running healthy") return 0 ;;
    running*) return 1 ;;
    *) die "the container stopped: $(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$id")" ;;
    esac
}

# --- up -------------------------------------------------------------------------------
say "build the runtime stage (its log: only if it fails)"
b0=$(date +%s)
made_runtime=$runtime
# --network host: apt-get inside the build; Docker's bridge has no route out on some hosts.
docker build --network host --target runtime --build-arg BASE_IMAGE="$base" -t "$runtime" \
    -f docker/Dockerfile . >"$work/build.log" 2>&1 || {
    tail -40 "$work/build.log"
    die "the runtime stage's build"
}
say "built $runtime in $(($(date +%s) - b0))s; up -d --build (tandem:smoke: runtime + $bins)"
compose_ready=1
compose up -d --build
compose ps -q tandemd | grep -q . || die "compose did not start tandemd"
wait_for 120 "the health check passes" healthy
say "healthy: $(docker image inspect -f '{{.Size}}' tandem:smoke | awk '{printf "image %.0f MB", $1/1e6}')"

"${tandem[@]}" health
session=$("${tandem[@]}" -o json session create --task disk-full)
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$session")
token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"]["candidate"])' <<<"$session")
say "session $id created"
# The interviewer's page, through the container's published HTTPS port, trusted by the
# smoke's own dev CA (the link's #fragment holds the token; the page itself is public).
web=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["web"]["interviewer"])' <<<"$session")
page=${web%%#*}
curl -sSf --tlsv1.3 --cacert "$work/certs/ca.crt" "$page" | grep -qi "<html" ||
    die "the interviewer's page $page is not served through the container"
say "web: $page served over HTTPS (TLS 1.3, the dev CA)"
ssh_cmd=(ssh -tt -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o LogLevel=ERROR -o BatchMode=yes)

check() {
    "${tandem[@]}" -o json session check "$1" |
        python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["outcome"], "|", c["output"].strip())'
}
outcome=$(check "$id")
say "check before: $outcome"
[[ $outcome == failed* ]] || die "the check should fail before the solution"

# The candidate: a marker echoed, then the task's solution typed into the shell.
{
    echo "send echo smoke-marker-\$((6*7))"
    echo "expect smoke-marker-42"
    echo "send bash <<'SOLUTION'"
    grep -v '^\s*$' tasks/disk-full/solution.sh | sed 's/^/send /'
    echo "send SOLUTION"
    echo "send echo solution-done-\$((6*7))"
    echo "expect solution-done-42"
} | python3 ci/pty-steps.py "$work/candidate.txt" 90 -- "${ssh_cmd[@]}" "$token@localhost" ||
    die "the candidate's session"
say "ssh: the candidate typed the marker and saw it echoed; typed the solution"
outcome=$(check "$id")
say "check after: $outcome"
[[ $outcome == passed* ]] || die "the check should pass after the solution"

# --- the escape probes, in the container ----------------------------------------------
ctr=$(compose ps -q tandemd)
ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$ctr")
marker=tandem-escape-target-$$
# What the probes aim at, in the container: a secret, a process listening on a port.
docker exec "$ctr" sh -c 'echo container secret > /root/tandem-escape-secret; mkdir -p /var/tmp/escape-write'
docker exec -d "$ctr" python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 47017)); s.listen(64)
while True: s.accept()[0].close()' "$marker"
wait_for 20 "the probes' target listens" docker exec "$ctr" python3 -c \
    'import socket; socket.create_connection(("127.0.0.1", 47017), timeout=1)'
target_pid=$(docker exec "$ctr" pgrep -f "$marker")
shadow1=$(docker exec "$ctr" head -1 /etc/shadow)
targets() { # MODE DISK_DIR
    python3 -c 'import json, sys; m, d, ip, pid, marker, shadow = sys.argv[1:]
print(json.dumps({"mode": m, "secret_file": "/root/tandem-escape-secret",
  "write_dir": "/var/tmp/escape-write", "disk_dir": d, "state_dir": "/var/lib/tandem",
  "tasks_dir": "/srv/tandem/tasks", "port": 47017, "other_ip": ip,
  "host_pid": int(pid), "host_marker": marker, "host_shadow_first_line": shadow,
  "pids": 64, "memory": 256 << 20, "disk_limit": 64 << 20}))' \
        "$1" "$2" "$ip" "$target_pid" "$marker" "$shadow1"
}
# A demo session first: its recording and sandbox are among the targets.
demo=$("${tandem[@]}" -o json session create --task demo)
demo_token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"]["candidate"])' <<<"$demo")
docker exec -i "$ctr" python3 - "$(targets host /var/tmp/escape-write)" <tests/probes/escape.py >"$work/probes-root.txt"
{
    echo "send python3 /opt/probes/escape.py '$(targets sandbox /tmp)' 2>&1 | tr '=' '%'; echo probes-\$((40+2))"
    echo "expect probes-42"
} | python3 ci/pty-steps.py "$work/probes-candidate.txt" 180 -- "${ssh_cmd[@]}" "$demo_token@localhost" ||
    die "the probes' session"
python3 - "$work/probes-root.txt" "$work/probes-candidate.txt" <<'EOF' || die "the sandbox wall in the container"
import re, sys
root = dict(l.strip().split("=", 1) for l in open(sys.argv[1]) if re.match(r"^\w+=", l) and not l.startswith("done="))
# The terminal's output, without its escape sequences (CSI; OSC such as a window title).
seen = open(sys.argv[2], "rb").read().decode(errors="replace")
# (a space for each: a cursor move may stand where the text had a space or a line break).
seen = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]", " ", seen)
through = sorted(n for n, r in root.items() if r == "yes")
other = sorted("%s=%s" % (n, r) for n, r in root.items() if r != "yes")
# What the container's root can reach and a candidate must not: these must be targets.
for needed in ("read_host_secret", "read_state_dir", "read_ssh_host_key", "read_recordings",
               "read_tasks_and_solutions", "read_host_shadow", "see_host_process",
               "signal_host_process", "reach_host_loopback_service", "write_host_file"):
    if root.get(needed) != "yes":
        sys.exit("as the container's root, %s should get through: %s" % (needed, root.get(needed)))
bad = []
for name in through:
    m = re.search(r"(?<!\w)" + re.escape(name) + r"%(yes|no|absent|error)", seen)
    result = m.group(1) if m else None
    if result != "no":
        bad.append("%s=%s" % (name, result))
print("escape probes in the container: %d of %d get through as the container's root; "
      "every one of them stopped for the candidate" % (len(through), len(root))
      if not bad else "NOT stopped for the candidate: " + ", ".join(bad))
if other:
    print("stopped already for the container's root (no target here): " + ", ".join(other))
sys.exit(1 if bad else 0)
EOF

# --- down, up: the recording survives ---------------------------------------------------
say "down, up"
compose down
compose up -d
wait_for 120 "the health check passes after up" healthy
"${tandem[@]}" session recording "$id" >"$work/recording.cast"
grep -q 'smoke-marker-42' "$work/recording.cast" || die "the first session's recording lost the marker"
say "after down and up: the first session's recording is served ($(wc -c <"$work/recording.cast") bytes, marker in it)"
say "PASSED"
