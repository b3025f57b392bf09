#!/usr/bin/env bash
# A window on a test camera (mediajack view). With a display it opens there for 8 seconds; without one
# it runs under Xvfb (scripts/setup installs it) and saves a screenshot of the window as view.png.
# Keys in the window: f fullscreen, o overlay, q quit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.build/debug"; [ -x "$bin/mediajack" ] || bin="$(cd "$root" && swift build --show-bin-path)"
dir=$(mktemp -d); bus="$dir/cam"
cleanup() { for p in $(jobs -p); do kill "$p" 2>/dev/null; done; wait 2>/dev/null; "$bin/ipn" rm "$bus" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
"$bin/ipn" create "$bus" --policy media --mtu 4194304 --persistent
"$bin/mediajack" publish test:video "$bus" --encode h264 --gop 25 --frames 250 2> /dev/null &
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    Xvfb -displayfd 3 -screen 0 1280x720x24 -nolisten tcp 3> "$dir/display" 2> /dev/null &
    until [ -s "$dir/display" ]; do sleep 0.05; done
    export DISPLAY=":$(cat "$dir/display")"
    "$bin/mediajack" view "$bus" --duration 8 &
    sleep 3
    import -window "$(xwininfo -name "mediajack view $bus" | sed -n 's/.*Window id: \(0x[0-9a-f]*\).*/\1/p')" view.png
    echo "screenshot of the window: view.png"
    wait %3
else
    "$bin/mediajack" view "$bus" --duration 8
fi
