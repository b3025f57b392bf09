#!/usr/bin/env bash
# The origin's example: the same image from a camera viewed by two unmodified camera programs (through the
# bus as a webcam), recorded and restreamed, all at once.
# Needs v4l2loopback (sudo modprobe v4l2loopback video_nr=10 exclusive_caps=1 card_label="IPN camera") and a
# camera; none here? Run it in the VM, which has vivid and v4l2loopback:
#   mkdir -p /tmp/webcam-demo && scripts/vm/run /tmp/webcam-demo bash "$PWD/samples/webcam.sh" /tmp/webcam-demo
set -euo pipefail
bin="$(cd "$(dirname "$0")/.." && pwd)/.build/release"; [ -x "$bin/mediajack" ] || bin="$(swift build -c release --show-bin-path)"
out=${1:-$(mktemp -d)}; bus=${TMPDIR:-/tmp}/webcam-$$; cam=${CAMERA:-/dev/video0}; webcam=${WEBCAM:-/dev/video10}
"$bin/ipn" create "$bus" --policy media --mtu 4194304 --persistent
trap 'kill $(jobs -p) 2>/dev/null || true; wait || true; "$bin/ipn" rm "$bus" 2>/dev/null || true' EXIT   # on any failure too
mkdir -p "$out/hls"
"$bin/mediajack" webcam "$bus" "$webcam" --size 320x180 --fps 10 &                  # the bus as a webcam
"$bin/mediajack" record "$bus" "$out/camera.mkv" &                                  # a recording
"$bin/mediajack" restream "$bus" "$out/hls/live.m3u8" --segment 2 --until-end &     # a restream
for i in $(seq 600); do "$bin/ipn" stat "$bus" | grep restream > /dev/null && break; sleep 0.1; done
"$bin/mediajack" publish "v4l2:$cam" "$bus" --pixel-format yuyv422 --size 320x180 --fps 10 --frames 100 &
for i in $(seq 600); do v4l2-ctl -d "$webcam" -D 2>/dev/null | grep "Video Capture" > /dev/null && break; sleep 0.1; done
# Two unmodified camera programs watching at once. (Debian 12's v4l2loopback 0.12.7 may, rarely, end one mmap reader
# as another starts or stops: see the README's webcam section.)
gst-launch-1.0 -q v4l2src device="$webcam" num-buffers=30 ! videoconvert ! jpegenc ! avimux ! filesink location="$out/watched-gst.avi" &
ffmpeg -v error -f v4l2 -i "$webcam" -frames:v 30 -y "$out/watched.mkv"
wait %5
wait %4                                                                             # the camera's 100 frames
wait %2 %3
kill -INT %1; wait %1
for f in "$out/camera.mkv" "$out/hls/live.m3u8" "$out/watched.mkv" "$out/watched-gst.avi"; do
  ffprobe -v error -count_frames -show_entries stream=codec_name,width,height,nb_read_frames -of compact "$f"
done
