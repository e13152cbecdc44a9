#!/bin/bash
# Fix for zombie-flood: find the parent that never reaps its children and stop it.
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

echo "zombies: $(ps -eo stat= | grep -c '^Z')"
ps -eo ppid=,stat= | awk '$2 ~ /^Z/ {print $1}' | sort | uniq -c | sort -rn | head -n 3
parent=$(ps -eo ppid=,stat= | awk '$2 ~ /^Z/ {print $1}' | sort | uniq -c | sort -rn | awk 'NR==1 {print $2}')
[ -n "$parent" ] || { echo "no zombies left"; exit 0; }
echo "parent of the zombies: pid $parent: $(tr '\0' ' ' </proc/"$parent"/cmdline)"
tail -n 2 /var/log/metrics-agent.log
ref=$(mktemp)
kill "$parent"
for _ in $(seq 50); do kill -0 "$parent" 2>/dev/null || break; sleep 0.1; done
echo "zombies now: $(ps -eo stat= | grep -c '^Z' || true)"
# The reporter runs every 3 s; wait for a run that started after the fix.
for _ in $(seq 100); do
    [ /var/lib/reporter/last_run -nt "$ref" ] && grep -q ' OK:' /var/lib/reporter/last_run && break
    sleep 0.1
done
rm -f "$ref"
cat /var/lib/reporter/last_run
