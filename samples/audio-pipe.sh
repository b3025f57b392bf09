#!/usr/bin/env bash
# Audio from one application into another through jackd-ipn: aplay plays onto a bus, arecord records the
# bus; then two players at once are recorded as their sum. No sound card: the server's clock is a timer.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.build/debug"; [ -x "$bin/jackd-ipn" ] || bin="$(cd "$root" && swift build --show-bin-path)"
dir=$(mktemp -d); bus="$dir/audio"
# The plugin, found through this user's ALSA configuration (here: a private HOME for the sample).
{ echo "pcm_type.ipn { lib \"$bin/libasound_module_pcm_ipn.so\" }"; cat "$root/samples/asoundrc"; } > "$dir/.asoundrc"
export HOME="$dir"
"$bin/jackd-ipn" --bus "$bus" --period 256 --driver dummy &
server=$!
sleep 0.5
ffmpeg -v error -f lavfi -i "sine=frequency=440:duration=2" -ac 2 -ar 48000 "$dir/a.wav"
ffmpeg -v error -f lavfi -i "sine=frequency=660:duration=1" -ac 2 -ar 48000 "$dir/b.wav"
arecord -q -D "ipn:BUS=$bus" -f S16_LE -r 48000 -c 2 -d 3 "$dir/take.wav" &
recorder=$!
sleep 0.3
aplay -q -D "ipn:BUS=$bus" "$dir/a.wav" &
player=$!
sleep 0.5
"$bin/jackd-ipn" stat "$bus"                               # the recorder and the first player
aplay -q -D "ipn:BUS=$bus" "$dir/b.wav"                    # mixed with the first one
wait $player $recorder
kill $server; wait $server 2>/dev/null || true
ffprobe -v error -show_entries stream=codec_name,sample_rate,channels -of compact "$dir/take.wav"
sox "$dir/take.wav" -n stat 2>&1 | grep -E "Length|RMS +amplitude"
rm -rf "$dir"
