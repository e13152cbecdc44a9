#!/bin/bash
# Fix for broken-permissions: let the billing group traverse the dir and read the config.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

curl -s http://127.0.0.1:8081/health || true
ps -o user,pid,args -C python3
namei -l /etc/billing/billing.conf
runuser -u billing -- cat /etc/billing/billing.conf >/dev/null || echo "billing cannot read its config"
chgrp billing /etc/billing /etc/billing/billing.conf
chmod 0750 /etc/billing
chmod 0640 /etc/billing/billing.conf
namei -l /etc/billing/billing.conf
runuser -u billing -- cat /etc/billing/billing.conf >/dev/null && echo "billing can read its config now"
curl -s http://127.0.0.1:8081/health
