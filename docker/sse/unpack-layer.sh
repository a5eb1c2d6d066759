#!/bin/sh
# Verify the ADOT collector layer zip against the SHA-256 pinned in collector-layer.lock, then unpack
# its extension into <destination>/extensions/. Run by the Dockerfile's first stage (and by tests).
#   unpack-layer.sh <layer.zip> <collector-layer.lock> <destination>
set -eu

zip_file=$1
lock_file=$2
destination=$3

pinned=$(sed -n 's/^LAYER_SHA256=\([0-9a-f]*\)$/\1/p' "$lock_file")
if [ "${#pinned}" -ne 64 ]; then
    echo "collector-layer.lock has no LAYER_SHA256: run 'docker/sse/deploy.sh pin' and commit the lock" >&2
    exit 1
fi
echo "$pinned  $zip_file" | sha256sum -c -

python3 -m zipfile -e "$zip_file" "$destination"
if [ ! -f "$destination/extensions/collector" ]; then
    echo "the layer zip has no extensions/collector" >&2
    exit 1
fi
# zipfile does not keep permissions: the extension must be executable (SC-029: /opt/extensions/collector)
chmod 0755 "$destination/extensions/collector"
