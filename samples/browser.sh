#!/usr/bin/env bash
# A test camera and a test sound served to web browsers (mediajack serve). Open the printed address in a
# browser while it runs (30 s); meanwhile two curl "viewers" join a second apart and their streams are
# checked with ffprobe: each is a fragmented MP4 (H.264 and AAC) that starts at a keyframe.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.build/debug"; [ -x "$bin/mediajack" ] || bin="$(cd "$root" && swift build --show-bin-path)"
dir=$(mktemp -d); bus="$dir/cam"
cleanup() { for p in $(jobs -p); do kill "$p" 2>/dev/null; done; wait 2>/dev/null; "$bin/ipn" rm "$bus" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
"$bin/ipn" create "$bus" --policy media --mtu 4194304 --persistent
"$bin/mediajack" serve "$bus" --listen 127.0.0.1:8080 --duration 30 > "$dir/serve.out" & server=$!
until grep -q serving "$dir/serve.out" 2>/dev/null; do kill -0 $server 2>/dev/null || exit 1; sleep 0.05; done
cat "$dir/serve.out"
"$bin/mediajack" publish test:audio "$bus" --frames 1400 > /dev/null 2>&1 &   # sound: the page's button turns it on
"$bin/mediajack" publish test:video "$bus" --encode h264 --gop 25 --frames 750 2> /dev/null &
sleep 2
curl -s http://127.0.0.1:8080/status.json; echo
{ curl -s -N --max-time 4 http://127.0.0.1:8080/stream.mp4 -o "$dir/a.mp4" || true; } & first=$!
sleep 1
curl -s -N --max-time 3 http://127.0.0.1:8080/stream.mp4 -o "$dir/b.mp4" || true
wait $first
for f in a b; do
    ffprobe -v error -count_frames -show_entries stream=codec_name,width,height,sample_rate,nb_read_frames -of compact "$dir/$f.mp4"
done
echo "the page stays up until the 30 s are over: http://127.0.0.1:8080/"
wait $server
