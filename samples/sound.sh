#!/usr/bin/env bash
# A sound card on a media bus: capture it onto the bus, record it, and play the bus on another device.
# CAPTURE and PLAYBACK are ALSA names (`mediajack devices --sound`). No sound card here? In the VM the
# snd-aloop card loops hw:Loopback,0,N into hw:Loopback,1,N:
#   mkdir -p /tmp/snd-demo && scripts/vm/run /tmp/snd-demo bash "$PWD/samples/sound.sh" hw:Loopback,1,0 hw:Loopback,0,1 /tmp/snd-demo
set -euo pipefail
bin="$(cd "$(dirname "$0")/.." && pwd)/.build/debug"; [ -x "$bin/mediajack" ] || bin="$(swift build --show-bin-path)"
capture=${1:-default}; playback=${2:-default}; out=${3:-$(mktemp -d)}; bus=${TMPDIR:-/tmp}/sound-$$
"$bin/mediajack" devices --sound
"$bin/ipn" create "$bus" --policy media --mtu 1048576 --persistent
"$bin/mediajack" publish "alsa:$capture" "$bus" --rate 48000 --channels 2 --frames 150 &   # 3 s
sleep 0.3
"$bin/mediajack" play "$bus" "alsa:$playback" --until-end &
"$bin/mediajack" record "$bus" "$out/captured.mkv"
wait
ffprobe -v error -show_entries stream=codec_name,sample_rate,channels -of compact "$out/captured.mkv"
"$bin/ipn" rm "$bus"
