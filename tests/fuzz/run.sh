#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) in build-fuzz/ and runs each for a set time
# starting from its committed seed corpus (tests/fuzz/corpus/<name>/, never modified: new inputs go to a scratch copy).
#   tests/fuzz/run.sh                 60 s per target
#   GW_FUZZ_SECONDS=15 tests/fuzz/run.sh [target...]
# Prints one line per target: executions, exec/s, libFuzzer's final cov: (edges) and ft: (features), corpus size.
# A crash, leak, timeout or broken invariant fails the run; the input is kept in build-fuzz/fuzz-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${GW_FUZZ_SECONDS:-60}
dir=build-fuzz
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DGW_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$dir" --target fuzz -j2 >/dev/null
# target name -> corpus directory
declare -A corpus=([fuzz_json3]=json3 [fuzz_vtt]=vtt [fuzz_srt]=srt [fuzz_ytdlp_meta]=ytdlp_meta [fuzz_url]=url
    [fuzz_gemini]=gemini [fuzz_dotenv]=dotenv [fuzz_router]=router)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_json3 fuzz_vtt fuzz_srt fuzz_ytdlp_meta fuzz_gemini fuzz_url fuzz_dotenv fuzz_router)
art="$dir/fuzz-artifacts"
mkdir -p "$art"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
printf '%-16s %10s %8s %6s %6s %7s  %s\n' target execs exec/s cov ft corpus result
fail=0
for t in "${targets[@]}"; do
    seeds=tests/fuzz/corpus/${corpus[$t]}
    work=$(mktemp -d /tmp/glint-fuzz.XXXXXX)
    log="$art/$t.log"
    rc=0
    "$dir/tests/fuzz/$t" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$art/$t-" "$work" "$seeds" >"$log" 2>&1 || rc=$?
    final=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$final")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$final")
    files=$(find "$work" -type f | wc -l)
    result=ok
    if [ "$rc" != 0 ]; then
        result="FAILED (exit $rc, see $log)"
        fail=1
    fi
    printf '%-16s %10s %8s %6s %6s %7s  %s\n' "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$files" "$result"
    rm -rf "$work"
done
exit $fail
