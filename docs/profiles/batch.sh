#!/bin/bash
# batch.sh FROM TO B REST: bursts of B deletes at once, then rest REST x the burst's time
# Needs: S=<nested engine socket>, D=<its dind container>, allids.txt (one image ID per line, images this run may delete).

sed -n "$1,$2p" allids.txt > /tmp/bids.txt; split -l $3 /tmp/bids.txt /tmp/bchunk.
for f in /tmp/bchunk.*; do s=$(date +%s.%N); xargs -P $3 -I{} curl -s -o /dev/null --unix-socket $S -X DELETE "http://d/v1.51/images/{}?force=false&noprune=true" < $f; e=$(date +%s.%N); sleep $(echo "($e-$s)*$4" | bc -l); done; rm -f /tmp/bchunk.*
