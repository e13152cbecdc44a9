#!/bin/bash
# Starts the pricing API in the background (log: /var/log/pricing.log).
setsid nohup /usr/bin/python3 /opt/pricing/pricing.py >>/var/log/pricing.log 2>&1 </dev/null &
for _ in $(seq 100); do
    if curl -fs --max-time 1 http://127.0.0.1:9100/health >/dev/null; then
        echo "pricing started (pid $!)"
        exit 0
    fi
    sleep 0.1
done
echo "pricing did not come up, see /var/log/pricing.log" >&2
exit 1
