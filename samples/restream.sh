#!/usr/bin/env bash
# One camera, two restreams at once: MPEG-TS over UDP to a receiver, and HLS into a directory that any
# web server can serve. Both are checked with ffprobe.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.build/debug"; [ -x "$bin/mediajack" ] || bin="$(cd "$root" && swift build --show-bin-path)"
dir=$(mktemp -d); bus="$dir/cam"
"$bin/ipn" create "$bus" --policy media --mtu 4194304 --persistent
ffmpeg -v error -y -i 'udp://127.0.0.1:5600?timeout=10000000' -t 4 -c copy "$dir/received.ts" &
receiver=$!
"$bin/mediajack" publish test:video "$bus" --encode h264 --gop 25 --frames 150 &
sleep 0.5
"$bin/mediajack" restream "$bus" 'udp://127.0.0.1:5600' --until-end &
"$bin/mediajack" restream "$bus" "$dir/hls/live.m3u8" --segment 1 --until-end
wait
ffprobe -v error -count_frames -show_entries stream=codec_name,nb_read_frames -of compact "$dir/received.ts"
ffprobe -v error -count_frames -show_entries stream=codec_name,nb_read_frames -of compact "$dir/hls/live.m3u8"
"$bin/ipn" rm "$bus"; rm -rf "$dir"
