#!/usr/bin/env bash
# Exporter-outage soak: the fully sampled instrumented server under wrk load for SECS seconds
# each with (1) a healthy OTLP receiver, (2) the OTLP port closed, (3) a receiver that accepts
# and never answers. RSS sampled every second; prints RSS after warm-up and at its peak, the
# throughput of each outage relative to the healthy run, and the spans the export queue dropped.
# Goals: RSS plateau <= +8 MiB over the healthy run's, throughput >= 0.95x.
# Usage: benches/soak.sh   (env: SECS=60; takes about 3*(SECS+5) seconds)
source "$(dirname "$0")/common.sh"
SECS=${SECS:-60}
WARM=${WARM:-5}
declare -A rps rss_warm rss_peak dropped
for phase in healthy closed hang; do
    case $phase in
        healthy) start_sink ok ;;
        hang) start_sink hang ;;
        closed) SINK_PID= ;;
    esac
    log=$(mktemp)
    start_server sampled "$log"
    rates=$(mktemp)
    drive "$SECS" >"$rates" &
    wrk_pid=$!
    warm=0 peak=0
    for second in $(seq "$SECS"); do
        sleep 1
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || true)
        kb=${kb:-0}
        [ "$second" -eq "$WARM" ] && warm=$kb
        [ "$kb" -gt "$peak" ] && peak=$kb
        echo "$phase t=${second}s rss_kib=$kb" >>"${SOAK_LOG:-/dev/null}"
    done
    wait "$wrk_pid" || true
    rps[$phase]=$(cat "$rates")
    rss_warm[$phase]=$warm; rss_peak[$phase]=$peak
    stop "$SERVER_PID"
    dropped[$phase]=$(sed -n 's/^final dropped_spans=//p' "$log" | tail -1)
    [ -n "${dropped[$phase]}" ] || dropped[$phase]=$(sed -n 's/^dropped_spans=//p' "$log" | tail -1)
    [ -n "${SINK_PID:-}" ] && stop "$SINK_PID"
    rm -f "$log" "$rates"
done
printf '%-8s %10s %8s %14s %14s %13s\n' phase req/s ratio rss_warm_MiB rss_peak_MiB dropped_spans
for phase in healthy closed hang; do
    printf '%-8s %10.0f %8.3f %14.1f %14.1f %13s\n' "$phase" "${rps[$phase]}" \
        "$(echo "${rps[$phase]} / ${rps[healthy]}" | bc -l)" \
        "$(echo "${rss_warm[$phase]} / 1024" | bc -l)" "$(echo "${rss_peak[$phase]} / 1024" | bc -l)" \
        "${dropped[$phase]:-?}"
done
printf 'RSS peak over the healthy peak: closed %+.1f MiB, hang %+.1f MiB (goal <= +8)\n' \
    "$(echo "(${rss_peak[closed]} - ${rss_peak[healthy]}) / 1024" | bc -l)" \
    "$(echo "(${rss_peak[hang]} - ${rss_peak[healthy]}) / 1024" | bc -l)"
