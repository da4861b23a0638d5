#!/usr/bin/env bash
# Idle cost per node on N loopback nodes: CPU, bytes, datagrams, and sent
# messages by kind, over a WINDOW-second window after WARM seconds.
#   N=40 BIN=target/release/ryx-node scripts/idle-traffic.sh
set -u
BIN=${BIN:-target/release/ryx-node}
N=${N:-40}; base=${BASE:-34800}; W=${WINDOW:-10}
pids=()
for i in $(seq 1 $N); do $BIN --port $((base+i)) --discovery-port $base --cluster-id idle$base "$@" 2>/dev/null & pids+=($!); done
sleep ${WARM:-15}
ticks() { t=0; for p in "${pids[@]}"; do s=($(cut -d' ' -f14,15 /proc/$p/stat)); t=$((t+s[0]+s[1])); done; echo $t; }
snap() { for i in $(seq 1 $N); do curl -s localhost:$((base+i))/metrics; done | awk '/^ryx_messages_sent_total|^ryx_message_bytes_sent_total|^ryx_bytes_sent_total |^ryx_datagrams_sent_total /{split($1,a,"{"); k=$1; s[k]+=$2} END{for(k in s) print k, s[k]}' | sort; }
a=$(mktemp); b=$(mktemp)
t0=$(ticks); snap > "$a"; sleep $W; t1=$(ticks); snap > "$b"
awk -v t=$((t1-t0)) -v hz=$(getconf CLK_TCK) -v w=$W -v n=$N 'BEGIN{printf "%-60s %10.3f %%/node\n", "cpu", t*100/hz/w/n}'
join "$a" "$b" | awk -v n=$N -v w=$W '{d=($3-$2)/w/n; if (d>0.05) printf "%-60s %10.1f /s/node\n", $1, d}'
rm -f "$a" "$b"
kill "${pids[@]}"; wait 2>/dev/null
