#!/usr/bin/env bash
# replay-monitor.sh - `mtlscope monitor`'s live rate: replay a capture at top speed onto a veth
# pair while `monitor` captures on the other end, and compare what it counted with `analyze`
# (benches/replay-live.sh does the same for `capture`).
#
#   sudo benches/replay-monitor.sh CAPTURE.pcap BIN [MONITOR FLAG...]
#
# MONITOR FLAGs are passed to `monitor` as they are, e.g. --buffer-size 32MiB (the default is
# the DaemonSet's per-pod 2MiB; `capture`'s is 32MiB).
# Two namespaces mtlscope-rm-tx / mtlscope-rm-rx joined by a veth pair (MTU 1500). BIN runs in
# the host's namespace and captures in mtlscope-rm-rx (`monitor --netns mtlscope-rm-rx -i rmrx`,
# its metrics on 127.0.0.1:PORT), `tcpreplay --topspeed` sends CAPTURE.pcap from the tx end.
# When the replay is done and the connections had IDLE to close, /metrics is read, then peak RSS
# (VmHWM) and CPU seconds (utime + stime) from /proc, and the monitor is stopped with SIGINT.
# Prints: packets and Gbit/s as tcpreplay reports them, packets captured and kernel drops
# (mtlscope_capture_packets_total, mtlscope_capture_drops_total), CPU seconds, peak RSS, and
# the connections counted per verdict next to the verdicts `BIN analyze CAPTURE.pcap -o json`
# gives for the same file. Nothing leaves the namespaces; an EXIT trap deletes them.
# PORT (default 19478), IDLE (default 5s: --idle-timeout, so that connections the capture
# leaves open are closed and counted before the read), NICE (default -10, as replay-live.sh).
set -Eeuo pipefail
[ $# -ge 2 ] || { sed -n '2,22p' "$0"; exit 2; }
PCAP=$1
BIN=$2
shift 2
EXTRA=("$@")
for t in tcpreplay ip python3 curl; do
    command -v "$t" >/dev/null || { echo "replay-monitor: needs $t" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "replay-monitor: run as root (it creates network namespaces)" >&2; exit 2; }
PORT=${PORT:-19478}
IDLE=${IDLE:-5s}
NICE=${NICE:--10}
WORK=$(mktemp -d /tmp/mtlscope-replay-monitor.XXXXXX)
TX=mtlscope-rm-tx
RX=mtlscope-rm-rx
mon=""
cleanup() {
    [ -z "$mon" ] || kill "$mon" 2>/dev/null || true
    ip netns del "$TX" 2>/dev/null || true
    ip netns del "$RX" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$TX"
ip netns add "$RX"
ip link add rmtx netns "$TX" type veth peer name rmrx netns "$RX"
ip -n "$TX" link set rmtx up
ip -n "$RX" link set rmrx up

# What the monitor should count: analyze's verdict per connection, loopback excluded as the
# monitor excludes it.
"$BIN" analyze "$PCAP" -o json > "$WORK/offline.json"
python3 - "$WORK/offline.json" > "$WORK/offline.counts" <<'EOF'
import collections, ipaddress, json, sys
doc = json.load(open(sys.argv[1]))
counts = collections.Counter()
for f in doc["flows"]:
    if ipaddress.ip_address(f["server"]["ip"]).is_loopback:
        continue
    counts[f["verdict"]] += 1
for v in ("mtls", "tls", "plaintext", "encrypted", "no-data"):
    print(v, counts.get(v, 0))
EOF

nice -n "$NICE" "$BIN" monitor --netns "$RX" -i rmrx --metrics-addr "127.0.0.1:$PORT" --idle-timeout "$IDLE" \
    ${EXTRA[@]+"${EXTRA[@]}"} > "$WORK/monitor.out" 2> "$WORK/monitor.err" &
mon=$!
up=""
for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null 2>&1 && { up=1; break; }
    kill -0 "$mon" 2>/dev/null || break
    sleep 0.2
done
[ -n "$up" ] || { echo "replay-monitor: the monitor did not answer /healthz:" >&2; cat "$WORK/monitor.err" >&2; exit 1; }
nice -n "$NICE" ip netns exec "$TX" tcpreplay --topspeed -i rmtx "$PCAP" > "$WORK/replay" 2>&1
# The connections the file leaves open close after IDLE without packets; then a little more.
sleep "$(python3 -c "import sys; s=sys.argv[1]; print(float(s[:-1]) * {'s': 1, 'm': 60}[s[-1]] + 3 if s[-1] in 'sm' else float(s) + 3)" "$IDLE")"
curl -sf "http://127.0.0.1:$PORT/metrics" > "$WORK/metrics" || { echo "replay-monitor: no /metrics" >&2; exit 1; }
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$mon/status")
ticks=$(awk '{print $14 + $15}' "/proc/$mon/stat")
kill -INT "$mon"
wait "$mon" || true
mon=""

python3 - "$WORK/metrics" > "$WORK/live.counts" <<'EOF'
import collections, re, sys
counts = collections.Counter()
for line in open(sys.argv[1]):
    m = re.match(r'^mtlscope_connections_total\{([^}]*)\} ([0-9.eE+-]+)', line)
    if m:
        verdict = re.search(r'verdict="([^"]*)"', m.group(1)).group(1)
        counts[verdict] += int(float(m.group(2)))
for v in ("mtls", "tls", "plaintext", "encrypted", "no-data"):
    print(v, counts.get(v, 0))
EOF
sum() { # METRIC -> sum of its samples
    awk -v m="$1" '$1 ~ "^"m"($|\\{)" {s += $NF} END {printf "%d", s}' "$WORK/metrics"
}
sent=$(sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p' "$WORK/replay")
rate=$(sed -n 's/.*Rated: [0-9.]* Bps, \([0-9.]*\) Mbps.*/\1/p' "$WORK/replay")
same=$(cmp -s "$WORK/offline.counts" "$WORK/live.counts" && echo yes || echo NO)
echo "$BIN monitor ${EXTRA[*]}, $PCAP"
echo "    tcpreplay: $sent packets at $(python3 -c "print(f'{$rate/1000:.2f}')") Gbit/s"
echo "    capture: $(sum mtlscope_capture_packets_total) packets read; $(sum mtlscope_capture_drops_total) kernel drops; buffer limit hits $(sum mtlscope_buffer_limit_hits_total)"
echo "    CPU: $(python3 -c "print(f'{$ticks / $(getconf CLK_TCK):.2f}')") s; peak RSS: $((hwm / 1024)) MiB (VmHWM $hwm kB)"
echo "    counted per verdict (monitor | analyze):"
paste "$WORK/live.counts" "$WORK/offline.counts" | awk '{printf "        %-10s %8d | %8d\n", $1, $2, $4}'
echo "    every count the same as analyze: $same"
