#!/usr/bin/env bash
# IPN as a network (run as root): two namespaces talk through TAPs on a switch bus; a third joins through
# a cable from a second bus. Everything is made here and removed at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.build/debug"; [ -x "$bin/ipn" ] || bin="$(cd "$root" && swift build --show-bin-path)"
export PATH="$bin:$PATH"
dir=$(mktemp -d); sa=ipn-a$$ sb=ipn-b$$ sc=ipn-c$$      # namespaces of this run only
cleanup() { for p in $(jobs -p); do kill $p 2>/dev/null || true; done; wait 2>/dev/null || true
            for n in $sa $sb $sc; do ip netns del $n 2>/dev/null || true; done; ipn rm "$dir/one" 2>/dev/null || true
            ipn rm "$dir/two" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
host() { ip netns add "$1"; ip link set "$2" netns "$1"; ip -n "$1" addr add "$3/24" dev "$2"; ip -n "$1" link set "$2" up; }
ipn create "$dir/one" --policy switch --persistent
ipn create "$dir/two" --policy switch --persistent
ipn tap "$dir/one" ipn-a & ipn tap "$dir/one" ipn-b & ipn tap "$dir/two" ipn-c &
sleep 0.5
host $sa ipn-a 10.99.0.1; host $sb ipn-b 10.99.0.2; host $sc ipn-c 10.99.0.3
ip netns exec $sa ping -c 3 10.99.0.2                     # through the bus
ipn cable "$dir/one" "$dir/two" &                          # plug the second bus in
sleep 0.3
ip netns exec $sa ping -c 3 10.99.0.3                     # across the cable
ip netns exec $sb iperf3 -s -1 > /dev/null & sleep 0.3
ip netns exec $sa iperf3 -c 10.99.0.2 -t 3 | tail -4
ipn stat "$dir/one"
