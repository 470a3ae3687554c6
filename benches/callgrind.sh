#!/usr/bin/env bash
# Instruction counts per call of the hottest paths (see benches/instructions.rs), under
# valgrind's callgrind: stable across machine load, so a regression is visible despite noise.
# Usage: benches/callgrind.sh [iterations]   (default 2000; prints Ir per call; PATHS=... to pick;
# KEEP=dir keeps the callgrind.out files for callgrind_annotate --inclusive=yes)
set -euo pipefail
cd "$(dirname "$0")"
iterations=${1:-2000}
bin=$(cargo bench --bench instructions --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*instructions[^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not build the instructions bench" >&2; exit 1; }
out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$out"' EXIT
printf '%-26s %12s\n' path Ir/call
# Ir of one run of <path> <iterations> <extra valgrind options...>
count() {
    local path=$1 n=$2 file="$out/$1.$2.out"; shift 2
    valgrind --tool=callgrind --callgrind-out-file="$file" "$@" "$bin" "$path" "$n" \
        >/dev/null 2>"$out/$path.log"
    local total
    total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$file")
    [ -n "$total" ] || total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$file")
    echo "$total"
}
for path in ${PATHS:-w3c_extract request_id fingerprint fingerprint_cached server_no_layer server_bare server_disabled server_filtered server_unsampled server_sampled server_generic_disabled server_generic_unsampled server_generic_sampled server_unsampled_metered server_sampled_metered server_reference client_chain client_ours client_peer tower_bare retry_breaker tower_retry tower_bare_in_span retry_breaker_in_span tower_retry_in_span sql_bare sql_reference sql_ours sql_ours_detector}; do
    case $path in
    sql_*) # every thread, whole program: (Ir at 2n - Ir at n) / n
        total=$(( $(count "$path" $((2 * iterations))) - $(count "$path" "$iterations") )) ;;
    *) total=$(count "$path" "$iterations" --collect-atstart=no --toggle-collect='*instructions*measure*') ;;
    esac
    printf '%-26s %12d\n' "$path" $((total / iterations))
done
