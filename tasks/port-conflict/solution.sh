#!/bin/bash
# Fix for port-conflict: free port 8080 from the stale "nginx" and start the shop frontend.
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

tail -n 3 /var/log/shop.log
ss -ltnp 'sport = :8080'
pid=$(ss -Hltnp 'sport = :8080' | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true)
if [ -n "$pid" ]; then
    echo "port 8080 held by pid $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline)"
    ls -l "/proc/$pid/exe" "/proc/$pid/cwd"
    kill "$pid"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "pid $pid ignored SIGTERM, sending SIGKILL"
        kill -9 "$pid"
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
fi
/opt/shop/start.sh
curl -s --max-time 3 http://127.0.0.1:8080/ | grep build
