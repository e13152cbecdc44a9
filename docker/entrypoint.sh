#!/bin/sh
# Starts tandemd. The state directory must not be on the container's own overlay
# filesystem (jobs' copy-on-write layers live there): compose mounts a volume on it.
set -eu
state="${TANDEM_STATE_DIR:-/var/lib/tandem}"
mkdir -p "$state" "${TANDEM_CERTS_DIR:-/etc/tandem/certs}"
if [ "$(stat -f -c %T "$state")" = overlayfs ]; then
    echo "tandem: $state is on overlayfs; mount a volume there (see compose.yaml)" >&2
    exit 1
fi

# Unprivileged containers have Docker's masks over parts of /proc and /sys (/proc/kcore,
# a read-only /proc/sys, …). The kernel lets a user namespace (every sandbox) mount its own
# proc only where a proc without such covers is visible, so jobs could not start. Remove
# them, as `--security-opt systempaths=unconfined` would (Compose has no equivalent); a
# privileged container has none.
masks=$(awk '$5 ~ "^/proc/" || $5 ~ "^/sys/firmware" { print $5 }' /proc/self/mountinfo | sort -r)
for mask in $masks; do
    if ! umount "$mask" 2>/dev/null; then
        echo "tandem: cannot unmask $mask: run the container privileged, or as compose.noprivileged.yaml says" >&2
        exit 1
    fi
done

# A sandbox's system view is this image's /usr (and /bin, /lib… where they are directories
# rather than links), presented through idmapped mounts, which overlayfs (the container's
# own root) does not support. So they are copied once to the state volume, a file system
# that does (ext4, xfs, btrfs), and mounted read-only over the originals; copied again
# when the image's differ (a new image).
dirs=
for d in usr bin sbin lib lib32 lib64 libx32; do
    if [ -d "/$d" ] && [ ! -L "/$d" ] && [ "$(stat -f -c %T "/$d")" = overlayfs ]; then
        dirs="$dirs $d"
    fi
done
if [ -n "$dirs" ]; then
    copy="$state/image-system"
    stamp=$(for d in $dirs; do find "/$d" -xdev -printf '%p %s %T@ %m %U:%G\n'; done | md5sum | cut -d' ' -f1)
    if [ "$(cat "$copy/stamp" 2>/dev/null)" != "$stamp" ]; then
        echo "tandem: copying the image's$dirs to $copy (idmapped mounts need a real file system)" >&2
        rm -rf "$copy.new" "$copy"
        mkdir -p "$copy.new"
        for d in $dirs; do cp -ax "/$d" "$copy.new/$d"; done
        echo "$stamp" >"$copy.new/stamp"
        mv "$copy.new" "$copy"
    fi
    for d in $dirs; do
        mount --bind "$copy/$d" "/$d"
        mount -o remount,bind,ro "/$d"
    done
fi
exec /usr/local/bin/tandemd "$@"
