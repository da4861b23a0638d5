#!/usr/bin/env bash
# Work against capacity on unequal loopback nodes (issue 17, "heterogeneous
# capacity"), in one run:
#  1. three nodes each of 1, 2 and 4 kernel threads (--workers) run a
#     word count; each node's share of the units run against its share of
#     the slots;
#  2. nine equal nodes (2 threads) run the same job, then nine with one
#     node 10x slower (--fault slow=10): the job's time with it against
#     the time without, and the slow node's share.
#   SIZE=64MiB CHUNK=256KiB REPEAT=3 scripts/capacity.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
SIZE=${SIZE:-64MiB}; CHUNK=${CHUNK:-256KiB}; REPEAT=${REPEAT:-3}
dir=$(mktemp -d)
C() { "$BIN/ryx-cluster" --dir "$dir" "$@"; }
trap 'C stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

# Per node: index, slots, units run, kernel seconds (from /metrics).
work() {
  python3 - "$dir/cluster.json" <<'EOF'
import json, sys, urllib.request
st = json.load(open(sys.argv[1]))
for n in st["nodes"]:
    if n.get("fate", "Running") not in ("Running", "running"):
        continue
    m = {}
    try:
        body = urllib.request.urlopen(f"http://{n.get('host', '127.0.0.1')}:{n['http_port']}/metrics", timeout=5).read()
    except OSError as e:
        print(f"node {n['index']}: no metrics ({e})", file=sys.stderr)
        continue
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            m[k] = float(v)
    print(n["index"], int(m["ryx_worker_slots"]), int(m["ryx_work_units_run_total"]), m["ryx_work_kernel_seconds_total"])
EOF
}

# Runs the job REPEAT times; prints the seconds each took (the job's own
# elapsed time, from submission to its result; the upload is not in it).
jobs() {
  for r in $(seq 1 "$REPEAT"); do
    C inject word-count --size "$SIZE" --seed "$r" --timeout 300 --json 2>/dev/null |
      python3 -c 'import json, sys; print("%.2f" % (json.load(sys.stdin)["stats"]["elapsed_ms"] / 1000))' ||
      echo "job $r failed" >&2
  done
}

share() {
  awk '{n[NR]=$1; s[NR]=$2; u[NR]=$3; S+=$2; U+=$3}
       END {if (S == 0 || U == 0) {print "no units ran"; exit 1}
            printf "%5s %6s %6s %11s %11s %9s\n", "node", "slots", "units", "slot share", "unit share", "ratio";
            for (i = 1; i <= NR; i++) printf "%5d %6d %6d %10.1f%% %10.1f%% %9.2f\n", n[i], s[i], u[i], 100 * s[i] / S, 100 * u[i] / U, (u[i] / U) / (s[i] / S)}'
}

# start's arguments go to every node (and to those added later), add's
# only to its own: the start nodes keep the default (one thread per core,
# two on a 2-core machine); each node's slots are read from its metrics.
echo "== 1. unequal nodes (1, default, 4 threads): units run against slots ($REPEAT x word-count $SIZE, chunks $CHUNK)"
C start --nodes 3 -- --chunk-size "$CHUNK" >/dev/null
C add --nodes 3 -- --workers 1 >/dev/null
C add --nodes 3 -- --workers 4 >/dev/null
times=$(jobs)
echo "job seconds: $(echo $times)"
work | share
C stop >/dev/null

echo "== 2. nine equal nodes, then one of them 10x slower ($REPEAT x word-count $SIZE each)"
C start --nodes 9 -- --chunk-size "$CHUNK" --workers 2 >/dev/null
base=$(jobs)
C stop >/dev/null
C start --nodes 8 -- --chunk-size "$CHUNK" --workers 2 >/dev/null
C add --nodes 1 -- --fault slow=10 >/dev/null
slow=$(jobs)
echo "without a slow node: $(echo $base) s; with one 10x slower: $(echo $slow) s"
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
mb=$(echo $base | median); ms=$(echo $slow | median)
[ -n "$mb" ] && [ -n "$ms" ] || { echo "a job failed: no timings" >&2; exit 1; }
echo "$ms $mb" | awk '{printf "median %.2f s against %.2f s: %.2fx (target <= 1.15x)\n", $1, $2, $1/$2}'
work | share
