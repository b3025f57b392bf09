#!/usr/bin/env bash
# Lossy (default) vs lossless: a stopped receiver loses messages on a lossy bus, but holds the
# sender back on a lossless one.
set -euo pipefail
ipn=".build/debug/ipn"; [ -x "$ipn" ] || ipn="$(swift build --show-bin-path)/ipn"
dir=$(mktemp -d)
for mode in lossy lossless; do
    bus="$dir/$mode"; flag=""; [ "$mode" = lossless ] && flag="--lossless"
    "$ipn" create "$bus" --queue 16 --persistent $flag >/dev/null
    "$ipn" recv "$bus" --quiet --receive-only & pid=$!
    sleep 0.3; kill -STOP $pid
    if timeout 2 "$ipn" send "$bus" --size 100 --count 1000; then echo "$mode: sender finished"; else echo "$mode: sender held back"; fi
    "$ipn" stat "$bus" | tail -1
    kill -CONT $pid; kill $pid; wait $pid 2>/dev/null || true
    "$ipn" rm "$bus"
done
rmdir "$dir"
