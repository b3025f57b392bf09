#!/usr/bin/env bash
# A hub bus: everything one node sends reaches every other node.
# Run from the package root after `swift build`.
set -euo pipefail
ipn=".build/debug/ipn"; [ -x "$ipn" ] || ipn="$(swift build --show-bin-path)/ipn"
dir=$(mktemp -d); bus="$dir/chat"
"$ipn" create "$bus" --policy hub --mode 0660 --persistent --description "sample chat"
"$ipn" recv "$bus" --count 3 --receive-only > "$dir/alice.txt" &
"$ipn" recv "$bus" --count 3 --receive-only > "$dir/bob.txt" &
sleep 0.5
printf 'hello\nfrom\nthe hub\n' | "$ipn" send "$bus"
wait
echo "alice got:"; cat "$dir/alice.txt"
echo "bob got:";   cat "$dir/bob.txt"
"$ipn" stat "$bus"
"$ipn" rm "$bus"
rm -rf "$dir"
