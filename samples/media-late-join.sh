#!/usr/bin/env bash
# A camera-like publisher on a media bus, and a recorder that joins mid-stream: its file starts at the
# publisher's cached keyframe and decodes cleanly from its first byte.
set -euo pipefail
bin=".build/debug"; [ -x "$bin/mediajack" ] || bin="$(swift build --show-bin-path)"
dir=$(mktemp -d); bus="$dir/camera"
"$bin/ipn" create "$bus" --policy media --mtu 4194304 --persistent
"$bin/mediajack" publish test:video "$bus" --encode h264 --size 640x360 --fps 25 --gop 50 --frames 250 &
sleep 3.5                                                  # mid-GOP
"$bin/mediajack" record "$bus" "$dir/late.mkv" --duration 3
wait
ffprobe -v error -show_entries stream=codec_name,width,height -of compact "$dir/late.mkv"
ffprobe -v error -select_streams v -show_entries frame=key_frame -of csv "$dir/late.mkv" | sed -n 1p   # frame,1: a keyframe
ffmpeg -v error -i "$dir/late.mkv" -f null - && echo "decodes cleanly"
"$bin/ipn" rm "$bus"; rm -rf "$dir"
