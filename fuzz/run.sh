#!/usr/bin/env bash
# Runs the fuzz targets one after another (one libFuzzer process, one job)
# and prints: target | executions | seconds | corpus size | crashes.
#
#   fuzz/run.sh                 # every target
#   fuzz/run.sh signatures      # some targets
#
# Environment:
#   RUNS       executions per target (default 3000000)
#   MAX_TIME   safety cap in seconds per target (default 1800)
#   SANITIZER  none | address | ... (default none: the workspace forbids
#              unsafe code, so libFuzzer's own checks catch what matters —
#              panics, overflows under debug assertions, stack overflow,
#              OOM, hangs — at twice the speed)
#
# The growing corpus lives in fuzz/corpus/<target>/ (ignored, seeded from
# fuzz/seeds/ and fuzz/regressions/); crashes in fuzz/artifacts/<target>/;
# logs in fuzz/logs/.
set -euo pipefail

RUNS="${RUNS:-3000000}"
MAX_TIME="${MAX_TIME:-1800}"
SANITIZER="${SANITIZER:-none}"
TOOLCHAIN="${TOOLCHAIN:-nightly}"

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+$TOOLCHAIN" fuzz list)
fi

mkdir -p logs
cargo "+$TOOLCHAIN" fuzz build -s "$SANITIZER"

results="logs/results.md"
printf '| target | executions | seconds | corpus size | crashes |\n|---|---:|---:|---:|---:|\n' >"$results"
failed=0
for target in "${targets[@]}"; do
    corpus="corpus/$target"
    artifacts="artifacts/$target"
    log="logs/$target.log"
    mkdir -p "$corpus" "$artifacts"
    for dir in "seeds/$target" "regressions/$target"; do
        if [ -d "$dir" ]; then
            cp -n "$dir"/* "$corpus"/ 2>/dev/null || true
        fi
    done
    crashes_before=$(find "$artifacts" -type f | wc -l)
    echo "== $target: $RUNS runs (cap ${MAX_TIME}s)" >&2
    rm -f fuzz-0.log
    status=0
    cargo "+$TOOLCHAIN" fuzz run -s "$SANITIZER" "$target" "$corpus" -- \
        -runs="$RUNS" -max_total_time="$MAX_TIME" -timeout=10 \
        -jobs=1 -workers=1 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log.driver" 2>&1 || status=$?
    # With -jobs, libFuzzer's own output goes to fuzz-<job>.log.
    if [ -f fuzz-0.log ]; then
        mv fuzz-0.log "$log"
    else
        mv "$log.driver" "$log"
    fi
    cat "$log.driver" >>"$log" 2>/dev/null && rm -f "$log.driver"
    # "Done N runs in S second(s)"; print_final_stats has the same count.
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n1)
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n1 || true)
    if [ -z "$execs" ] && [ -n "$done_line" ]; then
        execs=$(echo "$done_line" | awk '{print $2}')
    fi
    seconds=$(echo "$done_line" | awk '{print $5}')
    corpus_size=$(find "$corpus" -type f | wc -l)
    crashes=$(($(find "$artifacts" -type f | wc -l) - crashes_before))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="exit $status"
    fi
    if [ "$status" -ne 0 ]; then
        failed=1
    fi
    printf '| %s | %s | %s | %s | %s |\n' "$target" "${execs:-?}" "${seconds:-?}" \
        "$corpus_size" "$crashes" | tee -a "$results" >&2
done

echo
cat "$results"
exit "$failed"
