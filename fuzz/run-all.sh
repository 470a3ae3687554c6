#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 30: the CI smoke run; use 600 for the
# ten-minute runs). New inputs go to a scratch corpus, so the committed seeds stay small;
# crashes land in artifacts/<target>/. Exits non-zero on the first crashing target.
#   ./run-all.sh            # 30 s each
#   ./run-all.sh 600        # 10 min each
#   ./run-all.sh 60 b3 xray # only these targets
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list | grep -vx replay)
fi
work="${FUZZ_WORK_DIR:-${TMPDIR:-/tmp}/otel-fuzz-corpus}"
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  echo "== $t: ${seconds}s"
  cargo +nightly fuzz run -O "$t" "$work/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1
done
