#!/bin/sh
# Runs micro2.js's variants each in its own process, interleaved, $1 times (default 5); prints
# per variant the best and median of the processes' best-of-ROUNDS ns per request.
cd "$(dirname "$0")"
n=${1:-5}; shift
vs=${*:-none noop current lean_perfnow lean_hrtime_array lean_bigint lean_js_buckets lean_perfnow_encrypted}
for i in $(seq "$n"); do for v in $vs; do taskset -c 0 node micro2.js "$v"; done; done |
  awk '{b[$1]=b[$1]" "$2} END {for (k in b) print k, b[k]}' | sort
