#!/usr/bin/env bash
# A camera on a media bus: list what it can do, publish it (the best format it offers, or --pixel-format,
# --size, --fps), record it from the start and with a recorder joining late, check both files.
# No camera here? Run it against the real vivid driver in the VM:
#   mkdir -p /tmp/cam-demo && scripts/vm/run /tmp/cam-demo bash "$PWD/samples/camera.sh" /tmp/cam-demo
set -euo pipefail
bin="$(cd "$(dirname "$0")/.." && pwd)/.build/debug"; [ -x "$bin/mediajack" ] || bin="$(swift build --show-bin-path)"
out=${1:-$(mktemp -d)}; bus=${TMPDIR:-/tmp}/camera-$$
"$bin/mediajack" devices --cameras
"$bin/ipn" create "$bus" --policy media --mtu 8388608 --persistent
"$bin/mediajack" publish v4l2:/dev/video0 "$bus" --encode h264 --preset ultrafast --frames 100 &
sleep 0.5
"$bin/mediajack" record "$bus" "$out/from-start.mkv" &
sleep 2                                                   # the second recorder joins mid-stream
"$bin/mediajack" record "$bus" "$out/late.mkv"
wait
for f in "$out/from-start.mkv" "$out/late.mkv"; do
  ffprobe -v error -count_frames -show_entries stream=codec_name,width,height,nb_read_frames -of compact "$f"
  ffmpeg -v error -i "$f" -f null - && echo "$f decodes cleanly"
done
"$bin/ipn" rm "$bus"
