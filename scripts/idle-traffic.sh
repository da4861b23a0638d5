#!/usr/bin/env bash
# Idle traffic per node on N loopback nodes: bytes, datagrams, and sent messages by kind.
set -u
BIN=${BIN:-target/release/ryx-node}
N=${N:-40}; base=${BASE:-34800}
pids=()
for i in $(seq 1 $N); do $BIN --port $((base+i)) --discovery-port $base --cluster-id idle$base "$@" 2>/dev/null & pids+=($!); done
sleep ${WARM:-15}
snap() { for i in $(seq 1 $N); do curl -s localhost:$((base+i))/metrics; done | awk '/^ryx_messages_sent_total|^ryx_bytes_sent_total |^ryx_datagrams_sent_total /{split($1,a,"{"); k=$1; s[k]+=$2} END{for(k in s) print k, s[k]}' | sort; }
snap > /tmp/idle_a; sleep 10; snap > /tmp/idle_b
join /tmp/idle_a /tmp/idle_b | awk -v n=$N '{d=($3-$2)/10/n; if (d>0.05) printf "%-60s %10.1f /s/node\n", $1, d}'
kill "${pids[@]}"; wait 2>/dev/null
