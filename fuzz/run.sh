#!/bin/sh
# Runs every fuzz target, one after the other, for a fixed time each, then prints what it found.
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default 60 seconds, every target)
# Exit status 1 when any target has a crash-*, oom-* or timeout-* file in fuzz/artifacts/<target>/
# (found in this run or left from an earlier one: look at them, then move or delete them).
# Environment: SANITIZER (default address; "none" is faster), CARGO_BUILD_JOBS (default 1),
# BUILD_ARGS (extra `cargo fuzz build` flags; "-O" builds without overflow checks, as the
# shipped release binary is, to fuzz past an arithmetic-overflow panic already known),
# FUZZ_ARGS (extra libFuzzer flags), KEEP_GOING=1 (fork mode: keep fuzzing a target after a
# crash, saving every crashing input, instead of stopping at the first one).
# Logs: fuzz/target/run-logs/<target>.log.
set -eu
cd "$(dirname "$0")"
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-capture_file decode reassembly tls_stream certificate plaintext mesh rules policy}
export RUSTC_BOOTSTRAP=1 # cargo fuzz needs nightly flags; only stable is installed
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
sanitizer=${SANITIZER:-address}

for t in $targets; do
  if [ -z "$(ls -A "corpus/$t" 2>/dev/null)" ]; then
    ./seed.sh
    break
  fi
done
# Build once, then run the binaries: the library may change while the fuzzers run, and a
# rebuild inside `cargo fuzz run` would eat into the fuzzing time.
# shellcheck disable=SC2086
cargo fuzz build -s "$sanitizer" ${BUILD_ARGS:-}
bin=target/$(rustc -vV | sed -n 's/^host: //p')/release
mkdir -p target/run-logs
keep=""
if [ "${KEEP_GOING:-0}" = 1 ]; then
  keep="-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1"
fi

found=0
rows=""
for t in $targets; do
  mkdir -p "artifacts/$t"
  log="target/run-logs/$t.log"
  start=$(date +%s)
  # One fuzzer process at a time (the machine has two cores). The exit status is judged from
  # the artifacts below, not from libFuzzer.
  # shellcheck disable=SC2086
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0} "$bin/$t" \
    -artifact_prefix="artifacts/$t/" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 $keep ${FUZZ_ARGS:-} "corpus/$t" >"$log" 2>&1 || true
  elapsed=$(( $(date +%s) - start ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)
  bad=$(find "artifacts/$t" -maxdepth 1 -type f \
    \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
  [ "$bad" -eq 0 ] || found=1
  rows="$rows$(printf '%-14s %12s %8s %8s' "$t" "${runs:-?}" "$elapsed" "$bad")
"
  printf '%s: %s runs in %ss, %s crash/oom/timeout files\n' "$t" "${runs:-?}" "$elapsed" "$bad" >&2
done

printf '\n%-14s %12s %8s %8s\n' target runs seconds found
printf '%s' "$rows"
if [ "$found" -ne 0 ]; then
  echo
  echo "Found (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>):"
  for t in $targets; do
    find "artifacts/$t" -maxdepth 1 -type f \
      \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) -exec echo "  {}" \;
  done
  exit 1
fi
