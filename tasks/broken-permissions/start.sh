#!/bin/bash
# Starts the billing service as user "billing" (log: /var/log/billing/billing.log).
cd /
setsid nohup setpriv --reuid=billing --regid=billing --init-groups \
    /usr/bin/python3 /opt/billing/billing.py >>/var/log/billing/billing.log 2>&1 </dev/null &
for _ in $(seq 100); do
    if curl -s --max-time 1 -o /dev/null http://127.0.0.1:8081/health; then
        echo "billing started (pid $!)"
        exit 0
    fi
    sleep 0.1
done
echo "billing did not come up, see /var/log/billing/billing.log" >&2
exit 1
