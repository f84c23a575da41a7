#!/usr/bin/env bash
# keylog-ratio.sh - what a key log costs analyze on a large capture (issue 17: within 2x).
#
#   KEYLOG=1 sudo benches/gen-capture.sh OUT.pcap [--scale N]   # writes OUT.keylog beside it
#   benches/keylog-ratio.sh OUT.pcap [--runs N] [--mtlscope PATH]
#
# Runs `mtlscope analyze OUT.pcap -o jsonl` (streamed: the memory is the engine's, not a
# document's) without and with `--keylog-file OUT.keylog`, N times each (default 5), alternating,
# and prints the median CPU time (user + system, from getrusage: microseconds), wall time and
# maximum RSS of each, the ratios, and how many TLS 1.3 connections each run decided `certain`
# (the key log must have decrypted every one, or the figure would not measure decryption).
set -Eeuo pipefail

CAP="" RUNS=5 BIN=""
while [ $# -gt 0 ]; do
    case $1 in
        --runs) RUNS=$2; shift 2 ;;
        --mtlscope) BIN=$2; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) CAP=$1; shift ;;
    esac
done
[ -n "$CAP" ] || { echo "usage: $0 OUT.pcap [--runs N] [--mtlscope PATH]" >&2; exit 2; }
KEYS=${CAP%.pcap}.keylog
[ -s "$KEYS" ] || { echo "$KEYS: no key log (generate with KEYLOG=1 benches/gen-capture.sh)" >&2; exit 2; }
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/mtlscope}
[ -x "$BIN" ] || { echo "$BIN: build it first (cargo build --release)" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

run() { # label args... : one run, appends "cpu wall rss_kb" to $WORK/label
    local label=$1; shift
    python3 - "$WORK/$label.jsonl" "$BIN" analyze "$CAP" -o jsonl "$@" >>"$WORK/$label" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
with open(sys.argv[1], "w") as out:
    subprocess.run(sys.argv[2:], stdout=out, check=True)
wall = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{r.ru_utime + r.ru_stime:.4f} {wall:.4f} {r.ru_maxrss}")
PY
}
for i in $(seq "$RUNS"); do
    run plain
    run keylog --keylog-file "$KEYS"
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
stat() { # label column
    cut -d' ' -f"$2" "$WORK/$1" | median
}
certain() {
    python3 - "$WORK/$1.jsonl" <<'PY'
import json, sys
flows = [f for f in map(json.loads, open(sys.argv[1])) if "verdict" in f]
tls13 = [f for f in flows if f["tls"] is not None and f["tls"]["version"] == "TLS 1.3"]
print(sum(f["confidence"] == "certain" for f in tls13), "of", len(tls13))
PY
}
for l in plain keylog; do
    printf '%-7s cpu %7.4f s  wall %7.4f s  max RSS %7d KiB  TLS 1.3 connections certain: %s\n' \
        "$l" "$(stat "$l" 1)" "$(stat "$l" 2)" "$(stat "$l" 3)" "$(certain "$l")"
done
awk -v a="$(stat plain 1)" -v b="$(stat keylog 1)" -v c="$(stat plain 3)" -v d="$(stat keylog 3)" \
    -v e="$(stat plain 2)" -v f="$(stat keylog 2)" \
    'BEGIN { printf "ratio (key log / none): CPU %.3f, wall %.3f, max RSS %.3f (medians of '"$RUNS"' runs each)\n", b / a, f / e, d / c }'
