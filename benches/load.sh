#!/usr/bin/env bash
# Loopback load test: the hello-world server bare, instrumented unsampled and instrumented
# fully sampled (OTLP/HTTP export to the local otlp-sink), pinned to one core and driven by wrk
# from the other, alternating modes for ROUNDS rounds; prints each round's throughput and the
# median ratios to bare. Goals: unsampled >= 0.90x, sampled >= 0.65x.
# Usage: benches/load.sh   (env: ROUNDS=5, SECS=5; takes about ROUNDS*3*(SECS+2) seconds)
source "$(dirname "$0")/common.sh"
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
log=$(mktemp)
start_sink ok
declare -A rps
printf '%-6s %12s %12s %12s %9s %9s\n' round bare unsampled sampled unsamp/x samp/x
for round in $(seq "$ROUNDS"); do
    for mode in bare unsampled sampled; do
        start_server "$mode" "$log"
        drive 1 >/dev/null # warm-up
        rps[$mode]=$(drive "$SECS")
        stop "$SERVER_PID"
    done
    u=$(echo "${rps[unsampled]} / ${rps[bare]}" | bc -l)
    s=$(echo "${rps[sampled]} / ${rps[bare]}" | bc -l)
    printf '%-6s %12.0f %12.0f %12.0f %9.3f %9.3f\n' "$round" "${rps[bare]}" "${rps[unsampled]}" "${rps[sampled]}" "$u" "$s"
    echo "$u $s" >>"$log.ratios"
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf 'median ratio unsampled/bare: %.3f (goal >= 0.90)\n' "$(cut -d' ' -f1 "$log.ratios" | median)"
printf 'median ratio sampled/bare:   %.3f (goal >= 0.65)\n' "$(cut -d' ' -f2 "$log.ratios" | median)"
rm -f "$log" "$log.ratios"
