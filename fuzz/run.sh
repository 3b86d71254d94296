#!/usr/bin/env bash
# Run every fuzz target for a bounded time; exit non-zero if any of them crashed (a panic, an
# input slower than FUZZ_TIMEOUT seconds, or more than FUZZ_RSS_MB of memory).
#
#   fuzz/run.sh                      # every target, FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=300 fuzz/run.sh cron ipc_frames
#
# Installs cargo-fuzz when it is missing. libFuzzer needs unstable compiler flags, which the
# stable toolchain accepts with RUSTC_BOOTSTRAP=1. No sanitizer (`-s none`): the fuzzed crates
# have no unsafe code (the workspace denies it), so AddressSanitizer would find nothing that a
# panic does not, and builds and runs are faster without it; overflow checks and debug
# assertions stay on. Inputs found are kept in fuzz/corpus/<target> (not committed); the
# committed starting points are in fuzz/seeds/<target>; a crash is saved in
# fuzz/artifacts/<target>/ and can be replayed with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> <file>    (from fuzz/)
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-20}
rss_mb=${FUZZ_RSS_MB:-1024}
timeout=${FUZZ_TIMEOUT:-10}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "== cargo fuzz build"
cargo fuzz build -s none

failed=()
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${seconds}s"
    mkdir -p "corpus/$target" artifacts
    log="artifacts/$target.log"
    seeds=()
    [ -d "seeds/$target" ] && seeds=("seeds/$target")
    if ! cargo fuzz run -s none "$target" "corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout="$timeout" \
        -print_final_stats=1 2>"$log"; then
        tail -n 40 "$log"
        failed+=("$target")
    else
        grep -E '^(Done|stat::number_of_executed_units)' "$log" || true
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "== fuzzing FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "== fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
