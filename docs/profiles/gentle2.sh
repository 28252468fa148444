#!/bin/bash
# gentle2.sh NAME CMD...: probe commits while CMD runs
# Needs: S=<nested engine socket>, D=<its dind container>, allids.txt (one image ID per line, images this run may delete).
rm -f /tmp/stop; : > /tmp/g.txt; ./probe.sh /tmp/g.txt /tmp/stop & pp=$!
name=$1; shift; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); touch /tmp/stop; wait $pp
sort -n /tmp/g.txt | awk -v n="$name" -v w=$(echo "$t1-$t0"|bc) '{a[NR]=$1} END{printf "%-14s wall=%.1fs commits=%d p50=%.0f p99=%.0f max=%.0f ms\n", n, w, NR, a[int(NR/2)]*1000, a[int(NR*0.99)]*1000, a[NR]*1000}'
