#!/bin/bash
# Fix for disk-full: make the process holding the deleted trace log let go of it.
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

deleted_open() { find /proc/[0-9]*/fd -lname '/data/*(deleted)' 2>/dev/null || true; }

df -h /data
du -sh /data
# Which processes hold deleted files under /data open?
holders=$(deleted_open | cut -d/ -f3 | sort -u)
[ -n "$holders" ] || { echo "no process holds a deleted file under /data"; exit 1; }
ref=$(mktemp)
for pid in $holders; do
    echo "pid $pid holds a deleted file: $(tr '\0' ' ' </proc/"$pid"/cmdline)"
    # The tracer documents SIGHUP as "reopen the log file".
    kill -HUP "$pid"
done
# Wait for the space to come back and the inventory service to save again.
for _ in $(seq 100); do
    if [ -z "$(deleted_open)" ] && [ /data/app.db -nt "$ref" ]; then
        break
    fi
    sleep 0.2
done
rm -f "$ref"
df -h /data
tail -n 3 /var/log/inventory.log
