#!/bin/bash
# curve2.sh P FROM TO: DELETE allids lines FROM..TO (by ID, noprune) at P in flight; prints rate, latency, GCs
# Needs: S=<nested engine socket>, D=<its dind container>, allids.txt (one image ID per line, images this run may delete).
P=$1
since=$(date +%s); t0=$(date +%s.%N)
sed -n "$2,$3p" allids.txt | xargs -P $P -I{} curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --unix-socket $S -X DELETE "http://d/v1.51/images/{}?force=false&noprune=true" > /tmp/c2.txt
t1=$(date +%s.%N); sleep 1
gcs=$(docker logs --since $since $D 2>&1 | grep -c 'schedule content cleanup')
left=$(curl -s --unix-socket $S http://d/v1.51/info | python3 -c 'import json,sys;print(json.load(sys.stdin)["Images"])')
python3 - /tmp/c2.txt "$P" "$t0" "$t1" "$gcs" "$left" <<'PY'
import sys
f,P,t0,t1,gcs,left=sys.argv[1:]
rows=[l.split() for l in open(f)]
ts=sorted(float(t) for _,t in rows); bad=sum(1 for c,_ in rows if c!='200')
q=lambda p: ts[min(len(ts)-1,int(p*len(ts)))]*1000
w=float(t1)-float(t0)
print(f"P={P:>2} deletes={len(rows)} non200={bad} wall={w:.1f}s rate={len(rows)/w:.2f}/s lat p50={q(.5):.0f} p99={q(.99):.0f} ms GCs={gcs} deletes/GC={len(rows)/max(1,int(gcs)):.1f} images_left={left}")
PY
