#!/usr/bin/env bash
# A switch bus: Ethernet frames, MAC learning. Broadcasts and frames to unknown stations are flooded;
# a station's address is learned from its frames and forgotten when its node leaves (each `ipn send`
# below is a short-lived node, so both frames are flooded). Unicast between long-lived stations is
# shown by Tests/IPNBusTests/DeliveryTests.swift (testSwitchLearnsAddressesAndUnicastsBetweenTwoNodesOnly).
set -euo pipefail
ipn=".build/debug/ipn"; [ -x "$ipn" ] || ipn="$(swift build --show-bin-path)/ipn"
dir=$(mktemp -d); bus="$dir/lan"
"$ipn" create "$bus" --policy switch --persistent
frame() { printf "$1$2\x08\x00$3" > "$dir/$4"; }   # destination MAC, source MAC, EtherType, payload
A='\x02\x00\x00\x00\x00\x0a'; B='\x02\x00\x00\x00\x00\x0b'; ALL='\xff\xff\xff\xff\xff\xff'
"$ipn" recv "$bus" --hex --timeout 1 > "$dir/c.txt" &   # station C only listens
"$ipn" recv "$bus" --hex --timeout 1 > "$dir/b.txt" &   # B listens
sleep 0.5
frame "$ALL" "$A" "who-has" bcast && "$ipn" send "$bus" --file "$dir/bcast"   # flooded: B and C
frame "$B" "$A" "unicast" ucast && "$ipn" send "$bus" --file "$dir/ucast"     # B unknown yet: flooded too
wait
echo "B saw $(wc -l < "$dir/b.txt") frames, C saw $(wc -l < "$dir/c.txt") frames"
"$ipn" stat "$bus" | grep -E 'mac|flooded|unicast'
"$ipn" rm "$bus"; rm -rf "$dir"
