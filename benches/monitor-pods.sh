#!/usr/bin/env bash
# monitor-pods.sh - what `mtlscope monitor` costs per pod network namespace: the issue's "RSS
# with 50 pod namespaces" (issue 16), measured against one.
#
#   sudo benches/monitor-pods.sh BIN [N...]          # default N: 1 50
#
# For each N: N network namespaces mtlscope-mp-1..N ("pods"), each with an eth0 veth onto one
# bridge (in a namespace of its own, so nothing touches the host's network), addresses
# 10.77.0.0/16. Every fifth pod is a server: `openssl s_server -www` on 8443 asking for a client
# certificate (optional) and busybox httpd on 8080; the others are clients that loop over the
# servers with curl: mTLS (with a client certificate), TLS without one, and plaintext HTTP. With
# N=1 the one pod is a server and the clients run in mtlscope-mp-x, which is not captured.
# `BIN monitor --netns mtlscope-mp-1 ... --netns mtlscope-mp-N` captures in all N while the
# clients run for DURATION seconds; then its /metrics is read, and its peak RSS (VmHWM in
# /proc/PID/status) and CPU seconds (utime + stime in /proc/PID/stat) are taken before it is
# stopped with SIGINT. Prints per N: connections the clients made, connections the monitor
# counted per verdict, packets captured and kernel drops, peak RSS and CPU.
# DURATION (default 30): seconds of traffic. PAUSE (default 0.2): seconds each client waits
# between requests. PORT (default 19477): the monitor's metrics port on 127.0.0.1.
# NICE (default -10): niceness of the monitor, so that other work on a shared machine takes less
# from it. An EXIT trap deletes the namespaces and stops what the script started.
set -Eeuo pipefail
[ $# -ge 1 ] || { sed -n '2,22p' "$0"; exit 2; }
BIN=$1
shift
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 50)
for t in ip openssl curl busybox python3; do
    command -v "$t" >/dev/null || { echo "monitor-pods: needs $t (.ci/install-deps --test)" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "monitor-pods: run as root (it creates network namespaces)" >&2; exit 2; }
DURATION=${DURATION:-30}
PAUSE=${PAUSE:-0.2}
PORT=${PORT:-19477}
NICE=${NICE:--10}
WORK=$(mktemp -d /tmp/mtlscope-monitor-pods.XXXXXX)
BR=mtlscope-mp-br
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
    for ns in $(ip netns list | awk '/^mtlscope-mp-/ {print $1}'); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap 'cleanup; rm -rf "$WORK"' EXIT

# One CA, a server certificate for every address, a client certificate.
pki() {
    cd "$WORK"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
        -keyout ca.key -out ca.pem 2>/dev/null
    for who in server client; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$who" \
            -keyout "$who.key" -out "$who.csr" 2>/dev/null
        printf 'subjectAltName=IP:10.77.0.1,URI:spiffe://bench/%s\n' "$who" > "$who.ext"
        openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile "$who.ext" -out "$who.pem" 2>/dev/null
    done
    mkdir -p www && echo ok > www/index.html
    cd - >/dev/null
}

addr() { echo "10.77.$(($1 / 250)).$(($1 % 250 + 2))"; }

# Pod $1 (a namespace name) with address $2 on the bridge.
pod() {
    local ns=$1 ip=$2 i=$3
    ip netns add "$ns"
    ip link add "mp$i" netns "$BR" type veth peer name eth0 netns "$ns"
    ip -n "$BR" link set "mp$i" master br0 up
    ip -n "$ns" addr add "$ip/16" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
}

serve() {
    local ns=$1
    ip netns exec "$ns" openssl s_server -quiet -www -accept 8443 -cert "$WORK/server.pem" \
        -key "$WORK/server.key" -CAfile "$WORK/ca.pem" -verify 1 > /dev/null 2>&1 &
    PIDS+=($!)
    ip netns exec "$ns" busybox httpd -f -p 8080 -h "$WORK/www" > /dev/null 2>&1 &
    PIDS+=($!)
}

# A client in namespace $1 that loops over the servers until $WORK/stop exists, and writes the
# requests it attempted and those that completed to $WORK/made.$1.
client() {
    local ns=$1
    shift
    (
        made=0
        k=0
        tried=0
        servers=("$@")
        while [ ! -e "$WORK/stop" ]; do
            s=${servers[$((k % ${#servers[@]}))]}
            case $((k % 3)) in
                0) args=(--cacert "$WORK/ca.pem" --cert "$WORK/client.pem" --key "$WORK/client.key" "https://$s:8443/") ;;
                1) args=(--cacert "$WORK/ca.pem" "https://$s:8443/") ;;
                2) args=("http://$s:8080/") ;;
            esac
            # -k: the server certificate names one address; the chain is still the bench CA's.
            tried=$((tried + 1))
            ip netns exec "$ns" curl -sk -o /dev/null --max-time 5 "${args[@]}" && made=$((made + 1))
            k=$((k + 1))
            sleep "$PAUSE"
        done
        echo "$tried $made" > "$WORK/made.$ns"
    ) &
    PIDS+=($!)
}

metric_sum() { # FILE METRIC [LABEL=VALUE] -> sum of the samples
    python3 - "$@" <<'EOF'
import re, sys
path, name = sys.argv[1], sys.argv[2]
want = sys.argv[3] if len(sys.argv) > 3 else None
total = 0.0
for line in open(path):
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+|NaN)', line)
    if not m or m.group(1) != name:
        continue
    if want and want.replace("=", '="', 1) + '"' not in (m.group(2) or ""):
        continue
    total += float(m.group(3))
print(int(total))
EOF
}

pki
ip netns add "$BR"
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 up
for N in "${COUNTS[@]}"; do
    rm -f "$WORK"/made.* "$WORK/stop"
    servers=()
    netns_flags=()
    for i in $(seq 1 "$N"); do
        pod "mtlscope-mp-$i" "$(addr "$i")" "$i"
        netns_flags+=(--netns "mtlscope-mp-$i")
        if [ "$N" -eq 1 ] || [ $((i % 5)) -eq 1 ]; then
            servers+=("$(addr "$i")")
            serve "mtlscope-mp-$i"
        fi
    done
    clients=()
    if [ "$N" -eq 1 ]; then
        pod mtlscope-mp-x "$(addr 0)" 0
        clients=(mtlscope-mp-x)
    else
        for i in $(seq 1 "$N"); do
            [ $((i % 5)) -eq 1 ] || clients+=("mtlscope-mp-$i")
        done
    fi
    nice -n "$NICE" "$BIN" monitor "${netns_flags[@]}" --metrics-addr "127.0.0.1:$PORT" \
        > "$WORK/monitor.out" 2> "$WORK/monitor.err" &
    mon=$!
    PIDS+=("$mon")
    up=""
    for _ in $(seq 1 50); do
        curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null 2>&1 && { up=1; break; }
        kill -0 "$mon" 2>/dev/null || break
        sleep 0.2
    done
    [ -n "$up" ] || { echo "monitor-pods: the monitor did not answer /healthz:" >&2; cat "$WORK/monitor.err" >&2; exit 1; }
    for c in "${clients[@]}"; do client "$c" "${servers[@]}"; done
    sleep "$DURATION"
    touch "$WORK/stop"
    for _ in $(seq 1 100); do
        [ "$(find "$WORK" -maxdepth 1 -name "made.*" | wc -l)" -ge "${#clients[@]}" ] && break
        sleep 0.1
    done
    # Connections are counted when their verdict is final: give the last FINs a moment.
    sleep 3
    curl -sf "http://127.0.0.1:$PORT/metrics" > "$WORK/metrics" || { echo "monitor-pods: no /metrics" >&2; exit 1; }
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$mon/status")
    ticks=$(awk '{print $14 + $15}' "/proc/$mon/stat")
    cpu=$(python3 -c "print(f'{$ticks / $(getconf CLK_TCK):.2f}')")
    kill -INT "$mon"
    wait "$mon" || true
    tried=$(cat "$WORK"/made.* | awk '{s += $1} END {print s + 0}')
    made=$(cat "$WORK"/made.* | awk '{s += $2} END {print s + 0}')
    counted=$(metric_sum "$WORK/metrics" mtlscope_connections_total)
    per_verdict=""
    for v in mtls tls plaintext encrypted no-data; do
        per_verdict+="$v $(metric_sum "$WORK/metrics" mtlscope_connections_total verdict=$v), "
    done
    echo "N=$N: $N namespaces captured (${#servers[@]} servers, ${#clients[@]} clients), ${DURATION} s of traffic: $tried requests (one connection each), $made completed"
    echo "    counted: $counted connections (${per_verdict%, }); targets $(metric_sum "$WORK/metrics" mtlscope_capture_targets)"
    echo "    capture: $(metric_sum "$WORK/metrics" mtlscope_capture_packets_total) packets, $(metric_sum "$WORK/metrics" mtlscope_capture_drops_total) kernel drops; buffer limit hits $(metric_sum "$WORK/metrics" mtlscope_buffer_limit_hits_total)"
    echo "    monitor: peak RSS $((hwm / 1024)) MiB (VmHWM $hwm kB), CPU $cpu s"
    cleanup
    ip netns add "$BR"
    ip -n "$BR" link add br0 type bridge
    ip -n "$BR" link set br0 up
done
