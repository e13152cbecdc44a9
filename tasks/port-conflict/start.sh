#!/bin/bash
# Starts the shop frontend in the background (log: /var/log/shop.log).
PORT=8080
LOG=/var/log/shop.log
from=$(( $( (wc -l <"$LOG") 2>/dev/null || echo 0) + 1 ))
setsid nohup /usr/bin/python3 /opt/shop/server.py --port "$PORT" >>"$LOG" 2>&1 </dev/null &
pid=$!
for _ in $(seq 100); do
    if tail -n +"$from" "$LOG" | grep -q "listening on"; then
        echo "shop-frontend started (pid $pid) on port $PORT"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "shop-frontend exited during startup:" >&2
        tail -n +"$from" "$LOG" >&2
        exit 1
    fi
    sleep 0.1
done
echo "shop-frontend (pid $pid) did not report ready within 10s, see $LOG" >&2
exit 1
