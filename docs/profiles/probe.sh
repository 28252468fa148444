#!/bin/bash
# probe.sh OUT STOPFILE: commit every 50 ms until STOPFILE exists
# Needs: S=<nested engine socket>, D=<its dind container>, allids.txt (one image ID per line, images this run may delete).

while [ ! -e $2 ]; do curl -s -o /dev/null -w '%{time_total}\n' --unix-socket $S -X POST "http://d/v1.51/commit?container=probe&repo=probe&tag=latest" >> $1; sleep 0.05; done
