#!/usr/bin/env bash
# The bus file's mode is its access control: r receive, w send, x manage. Run as root.
set -euo pipefail
ipn="$(pwd)/.build/debug/ipn"; [ -x "$ipn" ] || ipn="$(swift build --show-bin-path)/ipn"
dir=$(mktemp -d); chmod 755 "$dir"; bus="$dir/bus"
"$ipn" create "$bus" --mode 0644 --persistent          # others may only receive
setpriv --reuid=65534 --regid=65534 --clear-groups "$ipn" recv "$bus" --count 1 &
sleep 0.5
"$ipn" stat "$bus" | tail -1                             # the nobody node joined as r- (send side shut down)
echo "as root: hello" | "$ipn" send "$bus"
wait
echo "x" | setpriv --reuid=65534 --regid=65534 --clear-groups "$ipn" send "$bus" || true   # permission denied: no send (w) right
"$ipn" rm "$bus"
# Reaching the path is part of the right: in a 0700 directory the same bus is closed to others whatever its
# own bits (every request carries a descriptor of the bus file, which only those who reach it can open).
mkdir -m 700 "$dir/private"
"$ipn" create "$dir/private/bus" --mode 0755 --persistent
setpriv --reuid=65534 --regid=65534 --clear-groups "$ipn" stat "$dir/private/bus" || true   # ...: you cannot reach it
"$ipn" rm "$dir/private/bus"; rmdir "$dir/private" "$dir"
