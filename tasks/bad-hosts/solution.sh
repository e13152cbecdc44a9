#!/bin/bash
# Fix for bad-hosts: drop the stale /etc/hosts pin so api.internal resolves via DNS.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

/opt/client/fetch.sh || true
grep '^hosts:' /etc/nsswitch.conf
echo "resolves to: $(getent hosts api.internal)"
echo "DNS says:    $(getent -s dns hosts api.internal)"
grep -n 'api\.internal' /etc/hosts
sed -i '/[[:space:]]api\.internal\([[:space:]]\|$\)/d' /etc/hosts
echo "resolves to: $(getent hosts api.internal)"
/opt/client/fetch.sh
