#!/usr/bin/env bash
# replay-live.sh - live capture rate: replay a capture at top speed onto a veth pair while
# `mtlscope capture -o jsonl` captures on the other end, and compare its verdicts with `analyze`.
#
#   sudo benches/replay-live.sh CAPTURE.pcap BIN [BIN...]
#
# For each BIN (e.g. main's libpcap build and the static agent from .ci/build-agent), in turn:
# two namespaces mtlscope-rp-tx / mtlscope-rp-rx joined by a veth pair (MTU 1500), BIN captures
# on the rx end (`capture --netns mtlscope-rp-rx -i rprx -o jsonl`, default 32 MiB buffer),
# `tcpreplay --topspeed` sends CAPTURE.pcap from the tx end, then the capture is stopped with
# SIGINT. Prints, per BIN: packets and Gbit/s as tcpreplay reports them, the kernel's received
# and dropped counters, CPU seconds and peak RSS of the capture (GNU time), and whether every
# connection's verdict equals the one `BIN analyze CAPTURE.pcap` gives. Nothing leaves the
# namespaces; an EXIT trap deletes them.
# NICE (default -10): the niceness of the capture and of tcpreplay, so that other work on a
# shared machine takes less from the run (0 to run them as everything else).
set -Eeuo pipefail
[ $# -ge 2 ] || { sed -n '2,14p' "$0"; exit 2; }
PCAP=$1
shift
for t in tcpreplay ip python3 /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "replay-live: needs $t" >&2; exit 2; }
done
NICE=${NICE:--10}
WORK=$(mktemp -d /tmp/mtlscope-replay.XXXXXX)
TX=mtlscope-rp-tx
RX=mtlscope-rp-rx
cleanup() {
    ip netns del "$TX" 2>/dev/null || true
    ip netns del "$RX" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

verdicts() { # JSONL -> sorted "client server verdict" lines
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if "verdict" in j:
        c, s = j["client"], j["server"]
        print(c["ip"], c["port"], s["ip"], s["port"], j["verdict"])
' "$1" | sort
}

n=0
for BIN in "$@"; do
    n=$((n + 1))
    cleanup
    mkdir -p "$WORK"
    ip netns add "$TX"
    ip netns add "$RX"
    ip link add rptx netns "$TX" type veth peer name rprx netns "$RX"
    ip -n "$TX" link set rptx up
    ip -n "$RX" link set rprx up
    "$BIN" analyze "$PCAP" -o jsonl > "$WORK/offline.jsonl"
    nice -n "$NICE" /usr/bin/time -f "%U %S %M" -o "$WORK/time" \
        "$BIN" capture --netns "$RX" -i rprx -o jsonl --duration 10m \
        > "$WORK/live.jsonl" 2> "$WORK/live.err" &
    cap=$!
    sleep 1
    nice -n "$NICE" ip netns exec "$TX" tcpreplay --topspeed -i rptx "$PCAP" > "$WORK/replay" 2>&1
    sleep 2
    # GNU time's child is the capture: signal it, not time.
    pkill -INT -P "$cap" || true
    wait "$cap" || true
    read -r user sys rss < "$WORK/time"
    sent=$(sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p' "$WORK/replay")
    rate=$(sed -n 's/.*Rated: [0-9.]* Bps, \([0-9.]*\) Mbps.*/\1/p' "$WORK/replay")
    counters=$(python3 -c '
import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])["summary"]
c = s["capture"]
print(c["packets"], c["received"], c["dropped"], c["if_dropped"], s["connections"])
' "$WORK/live.jsonl")
    read -r captured received dropped ifdropped conns <<< "$counters"
    verdicts "$WORK/offline.jsonl" > "$WORK/offline.v"
    verdicts "$WORK/live.jsonl" > "$WORK/live.v"
    same=$(cmp -s "$WORK/offline.v" "$WORK/live.v" && echo yes || echo "NO ($(diff "$WORK/offline.v" "$WORK/live.v" | grep -c '^[<>]') lines differ)")
    echo "[$n] $BIN"
    echo "    tcpreplay: $sent packets at $(python3 -c "print(f'{$rate/1000:.2f}')") Gbit/s"
    echo "    capture: $captured packets read; kernel: $received received, $dropped dropped, $ifdropped dropped by the interface"
    echo "    CPU: $(python3 -c "print(f'{$user+$sys:.2f}')") s ($user user, $sys system); peak RSS: $((rss / 1024)) MiB"
    echo "    verdicts: $conns live, $(wc -l < "$WORK/offline.v") offline; every verdict the same as analyze: $same"
done
