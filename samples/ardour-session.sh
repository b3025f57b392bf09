#!/usr/bin/env bash
# Ardour (Debian's ardour package: apt install ardour) on jackd-ipn through our libjack: its JACK engine starts,
# it makes a session and rolls with the metronome on; an ALSA recorder hears the clicks on the card's side, one
# every half second (120 bpm). No sound card: the server's clock is a timer. Not reliable yet (README, Ardour):
# in about a quarter of runs the transport has not rolled when the recorder ends, and the recording is silent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.build/release"; [ -x "$bin/ipn-jack" ] || bin="$(cd "$root" && swift build -c release --show-bin-path)"
dir=$(mktemp -d)
export XDG_RUNTIME_DIR="$dir" HOME="$dir" PATH="$bin:$PATH"
{ echo "pcm_type.ipn { lib \"$bin/libasound_module_pcm_ipn.so\" }"; cat "$root/samples/asoundrc"; } > "$dir/.asoundrc"
jackd-ipn --period 256 &                                   # JACK's "default" server
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
until ipn-jack jack_lsp > /dev/null 2>&1; do sleep 0.1; done
export SESSION_DIR="$dir/session"
export WHILE_ROLLING="ipn-jack jack_lsp -c | grep -A1 -x 'ardour:Master/audio_out 1'; arecord -q -D ipn:BUS=$dir/jack-ipn/default -f S16_LE -r 48000 -c 2 -d 2 $dir/click.wav"
ipn-jack ardour7-lua "$root/samples/ardour-session.lua" 2>&1 | grep -E "^(rolled|closed|   |ardour:)"
ls "$SESSION_DIR"
sox "$dir/click.wav" -n stat 2>&1 | grep -E "Length|Maximum amplitude"  # four clicks in 2 s
