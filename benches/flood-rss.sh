#!/usr/bin/env bash
# Peak RSS of mtlscope under a flood of SYN-only connections, per output format, with default
# flags (issue 15: every format stays under 128 MB at 1,000,000 SYNs).
#
#   benches/flood-rss.sh [--syns N] [--mtlscope PATH] [--no-build]
#
# Writes benches/out/synflood-N.pcap once (N connections with distinct 5-tuples: client
# 10.(i>>16).(i>>8).(i), port 1024 + i % 60000, ISN i, to 10.255.0.1:443; Ethernet/IPv4/TCP,
# 54 bytes each, valid checksums, 1 us apart: the flood of tests/floods.rs), then runs each
# command under /usr/bin/time -v with standard output to /dev/null and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
syns=1000000
bin=""
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --syns) syns="$2"; shift 2 ;;
        --mtlscope) bin="$2"; build=0; shift 2 ;;
        --no-build) build=0; shift ;;
        *) echo "usage: $0 [--syns N] [--mtlscope PATH] [--no-build]" >&2; exit 2 ;;
    esac
done
target="${CARGO_TARGET_DIR:-target}"
if [ -z "$bin" ]; then
    bin="$target/release/mtlscope"
    [ "$build" = 1 ] && cargo build --release --quiet
fi
[ -x "$bin" ] || { echo "$0: no mtlscope at $bin (build it, or give --mtlscope PATH)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "$0: needs GNU time at /usr/bin/time (Debian: apt-get install time)" >&2; exit 2; }
mkdir -p benches/out
pcap="benches/out/synflood-$syns.pcap"
if [ ! -s "$pcap" ]; then
    python3 - "$syns" "$pcap.tmp" <<'PY'
import struct, sys
n, path = int(sys.argv[1]), sys.argv[2]

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

dst = bytes([10, 255, 0, 1])
eth = bytes([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0])
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        src = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
        sport = 1024 + i % 60000
        tcp = struct.pack("!HHIIBBHHH", sport, 443, i, 0, 5 << 4, 0x02, 65535, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        frame = eth + ip + tcp
        t = 1_700_000_000_000_000 + i  # microseconds
        f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame), len(frame)))
        f.write(frame)
PY
    mv "$pcap.tmp" "$pcap"
fi
echo "$bin on $pcap ($(stat -c %s "$pcap") bytes, $syns SYN-only connections)"
echo
echo "| command | exit | peak RSS MB | wall s |"
echo "|---|---:|---:|---:|"
run() {
    local log status
    log=$(mktemp)
    set +e
    /usr/bin/time -v "$bin" "$@" >/dev/null 2>"$log"
    status=$?
    set -e
    local rss wall
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$log")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s}' "$log")
    echo "| \`$*\` | $status | $rss | $wall |" | sed "s|$pcap|FILE|g"
    rm -f "$log"
}
run analyze "$pcap" -o table
run analyze "$pcap" -o json
run analyze "$pcap" -o jsonl
run check "$pcap" --require mtls
run check "$pcap" --require mtls -o json --junit /dev/null
