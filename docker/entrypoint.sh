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
exec /usr/local/bin/tandemd "$@"
