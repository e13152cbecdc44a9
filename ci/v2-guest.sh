#!/usr/bin/env bash
# Runs COMMAND as root inside a throw-away cgroup-v2 Linux guest and exits with its status.
#
#   ci/v2-guest.sh COMMAND [ARG...]
#
# The guest is User-Mode Linux (Debian's `user-mode-linux` package, Linux 6.1): an ordinary
# process, no virtualisation support needed; it boots in about three seconds. Its kernel
# runs with `cgroup_no_v1=all`: a pure cgroup-v2 host with the cpu, io, memory and pids
# controllers enabled at the root. Its root file system is an ext4 image of this machine's
# /usr and /etc (built once, cached in $TANDEM_GUEST_DIR, default /var/tmp/tandem-v2-guest;
# a copy-on-write layer per run), so programs built here run unchanged; the current
# directory and $TANDEM_GUEST_BINDS (colon-separated host paths) are mounted at the same
# paths from the host (hostfs). The guest has only a loopback network. Nothing keeps
# running after it exits. Needs root (for the image build) and, when missing, apt.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "$0: must run as root" >&2
    exit 2
fi

missing=()
command -v linux.uml >/dev/null 2>&1 || missing+=(user-mode-linux)
[ -x /usr/bin/busybox ] || [ -x /bin/busybox ] || missing+=(busybox-static)
command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
fi

dir=${TANDEM_GUEST_DIR:-/var/tmp/tandem-v2-guest}
image=$dir/root.ext4
kver=$(ls /usr/lib/uml/modules | sort -V | tail -n 1)
mkdir -p "$dir"

build_image() {
    echo "v2-guest: building the guest's root file system image (once)" >&2
    local stage
    stage=$(mktemp -d "$dir/stage.XXXXXX")
    # A private mount namespace: the host's /usr and /etc appear in the staging tree, big
    # directories nothing in the guest uses are covered by empty tmpfs mounts.
    unshare --mount --propagation private sh -eu -c '
        stage=$1
        for d in usr etc; do mkdir -p "$stage/$d"; mount --bind "/$d" "$stage/$d"; done
        for big in usr/lib/google-cloud-sdk usr/lib/jvm usr/share/doc usr/share/man \
                   usr/share/locale usr/share/package-lists usr/lib/chromium; do
            [ -d "$stage/$big" ] && mount -t tmpfs -o size=4k tmpfs "$stage/$big"
        done
        for link in bin sbin lib lib32 lib64 libx32; do
            [ -L "/$link" ] && ln -s "$(readlink "/$link")" "$stage/$link"
        done
        mkdir -p "$stage"/proc "$stage"/sys "$stage"/dev "$stage"/run "$stage"/root \
                 "$stage"/home "$stage"/mnt "$stage"/host "$stage"/var/tmp "$stage"/var/log \
                 "$stage"/var/lib
        install -d -m 1777 "$stage/tmp"
        chmod 1777 "$stage/var/tmp"
        cp "$2" "$stage/tandem-guest-init"
        chmod 755 "$stage/tandem-guest-init"
        rm -f "$3"
        truncate -s 8G "$3"
        mkfs.ext4 -q -F -L tandem-guest -d "$stage" "$3"
    ' sh "$stage" "$dir/init.sh" "$image.new"
    rm -rf "$stage"
    mv "$image.new" "$image"
}

# The guest's init: mounts, cgroup v2 controllers, overlayfs, the host paths; runs the
# command; records its status on the host; powers off.
cat > "$dir/init.sh.new" <<'INIT'
#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# The kernel mounts devtmpfs on /dev itself (CONFIG_DEVTMPFS_MOUNT).
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs -o mode=755 run /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
echo "+cpu +io +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
# No module loader in the guest: load what tandem and its tests use.
modules=/usr/lib/uml/modules/$(uname -r)/kernel
insmod "$modules/fs/overlayfs/overlay.ko"
insmod "$modules/drivers/net/dummy.ko" 2>/dev/null
mount -t hostfs none /host
old_ifs=$IFS; IFS=:
for path in $tandem_binds; do
    [ -n "$path" ] || continue
    mkdir -p "$path"
    mount --bind "/host$path" "$path"
done
IFS=$old_ifs
hostname tandem-v2-guest
ip link set lo up 2>/dev/null || busybox ifconfig lo up
sh "/host$tandem_cmd"
echo $? > "/host$tandem_exit"
sync
poweroff -f
INIT
# Rebuilt when the init changed, or when packages were installed since (the image is a
# copy of this machine's /usr).
if [ ! -f "$dir/init.sh" ] || ! cmp -s "$dir/init.sh.new" "$dir/init.sh" || [ ! -f "$image" ] \
    || [ /var/lib/dpkg/status -nt "$image" ]; then
    mv "$dir/init.sh.new" "$dir/init.sh"
    build_image
else
    rm -f "$dir/init.sh.new"
fi

run=$(mktemp -d "$dir/run.XXXXXX")
cleanup() { rm -rf "$run"; }
trap cleanup EXIT
{
    echo "cd $(printf '%q' "$PWD") || exit 125"
    printf '%q ' "$@"
    echo
} > "$run/cmd.sh"
echo 125 > "$run/exit"
binds="$PWD:${TANDEM_GUEST_BINDS:-}"

# ubd0=COW,BACKING: writes go to the run's own copy-on-write file.
# The kernel's own messages and UML's start-up chatter go to a log, shown on failure.
linux.uml mem=${TANDEM_GUEST_MEM:-2G} ubd0="$run/cow,$image" root=/dev/ubda rw \
    init=/tandem-guest-init cgroup_no_v1=all quiet loglevel=1 con=null con0=null,fd:1 \
    tandem_cmd="$run/cmd.sh" tandem_exit="$run/exit" tandem_binds="$binds" \
    </dev/null 2>"$run/uml.log" | tr -d '\r'
status=$(cat "$run/exit")
if [ "$status" = 125 ]; then
    echo "v2-guest: the guest did not run the command; its log:" >&2
    cat "$run/uml.log" >&2
fi
exit "$status"
