#!/bin/bash
# Fix for runaway-cpu: find the CPU hog, kill its respawner and the hog, keep pricing up.
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

procs=$(ps -eo pid=,ppid=,pcpu=,nlwp=,args= --sort=-pcpu)
echo "$procs" | head -n 6
# The top CPU user that is not the pricing API itself.
hog=$(awk '!/\/opt\/pricing\// {print $1; exit}' <<<"$procs")
echo "top CPU user: pid $hog, exe $(readlink /proc/"$hog"/exe)"
parent=$(ps -o ppid= -p "$hog" | tr -d ' ')
echo "its parent: pid $parent: $(tr '\0' ' ' </proc/"$parent"/cmdline), exe $(readlink /proc/"$parent"/exe)"
ls /usr/sbin/cron 2>/dev/null || echo "no /usr/sbin/cron on this box: the parent is fake"
if [ "$parent" != 1 ] && [ "$(readlink /proc/"$parent"/exe)" != "$(readlink /proc/$$/exe)" ]; then
    kill -9 "$parent"
fi
kill -9 "$hog"
sleep 3
ps -eo pid,ppid,pcpu,comm,args --sort=-pcpu | head -n 4
time curl -fsS --max-time 5 'http://127.0.0.1:9100/quote?sku=ABC-123'
