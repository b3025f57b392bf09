#!/usr/bin/env bash
# Unmodified JACK programs (Debian's jackd2 tools) on jackd-ipn through our libjack: a tone client played to
# the card's side and recorded there by an ALSA application, a connection change, jack_rec recording a
# client, and MIDI from a sequencer into a synthesizer. No sound card: the server's clock is a timer.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.build/release"; [ -x "$bin/ipn-jack" ] || bin="$(cd "$root" && swift build -c release --show-bin-path)"
dir=$(mktemp -d)
# A private JACK server directory and ALSA configuration for the sample (a user's own: $XDG_RUNTIME_DIR, ~/.asoundrc).
export XDG_RUNTIME_DIR="$dir" HOME="$dir" PATH="$bin:$PATH"
{ echo "pcm_type.ipn { lib \"$bin/libasound_module_pcm_ipn.so\" }"; cat "$root/samples/asoundrc"; } > "$dir/.asoundrc"
jackd-ipn --period 256 &                                   # JACK's "default" server
server=$!
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
until ipn-jack jack_lsp > /dev/null 2>&1; do sleep 0.1; done
ipn-jack jack_simple_client > /dev/null &                  # 240 Hz left, 720 Hz right, to system:playback
until ipn-jack jack_lsp -c | grep -qx "   jack_simple_client:output2"; do sleep 0.1; done
ipn-jack jack_lsp -c -t                                    # ports, connections and types
arecord -q -D "ipn:BUS=$dir/jack-ipn/default" -f S16_LE -r 48000 -c 2 -d 2 "$dir/card.wav"   # the card's side
ipn-jack jack_rec -f "$dir/rec.wav" -d 2 jack_simple_client:output1 > /dev/null               # a JACK recorder
ipn-jack jack_disconnect jack_simple_client:output2 system:playback_2
ipn-jack jack_midiseq seq 48000 0 60 24000 > /dev/null &   # note 60 for half of every second
ipn-jack jack_midisine > /dev/null &
until ipn-jack jack_lsp | grep -qx midisine:audio_out; do sleep 0.1; done
ipn-jack jack_connect seq:out midisine:midi_in
ipn-jack jack_connect midisine:audio_out system:playback_2
arecord -q -D "ipn:BUS=$dir/jack-ipn/default" -f S16_LE -r 48000 -c 2 -d 2 "$dir/notes.wav"
jackd-ipn stat "$dir/jack-ipn/default"
# The card heard 240 Hz on the left; jack_rec recorded 240 Hz; midisine played note 60 (523 Hz) on the right.
for f in card:1 rec:1 notes:2; do echo "${f%:*}.wav, channel ${f#*:}:"; sox "$dir/${f%:*}.wav" -n remix "${f#*:}" stat 2>&1 | grep -E "Length|Rough +frequency"; done
