#!/usr/bin/env bash
# gen-capture.sh - generate a large, realistic capture for mtlscope's performance benchmarks.
#
#   sudo benches/gen-capture.sh [OUT.pcap] [--scale N]
#
# OUT.pcap defaults to benches/out/capture.pcap (scale 1) or benches/out/capture-xN.pcap.
# At scale 1: about 620 MB, 12,004 TCP connections, ~650,000 packets, in about 30 s on 2 cores.
# --scale N multiplies every connection count and the number of bulk transfers by N (the capture
# grows N times; a fraction such as 0.05 makes a quick smoke run).
# Next to the capture it writes OUT.truth.tsv: per server port, the scenario, the verdict each
# connection must get and how many connections there are (counted by the clients and servers
# and cross-checked against the SYNs in the capture -- never by mtlscope).
#
# Traffic runs between two network namespaces created here, mtlscope-bench-cli (10.77.0.1) and
# mtlscope-bench-srv (10.77.0.2), joined by a veth pair (MTU 1500; TSO/GSO/GRO and TX checksum
# offload off, so packets are wire-sized and carry real checksums). Nothing leaves them; an EXIT
# trap stops every process started here and deletes both namespaces, also on error or Ctrl-C.
#
# Scenarios, one server port each (servers: nginx and openssl s_server; clients: curl):
#   4431  TLS 1.3, client certificate required (mTLS)  nginx ssl_verify_client on, ECDSA certs
#   4432  TLS 1.3, server-only                         nginx ssl_verify_client off
#   4433  TLS 1.2, client certificate required (mTLS)  nginx, RSA certs
#   4434  TLS 1.2, server-only                         nginx, RSA cert
#   8080  plaintext HTTP/1.1                           nginx
#   9000  bulk TLS 1.3 mTLS downloads (64 MiB each)    openssl s_server -WWW -Verify 1
# Small connections fetch one file of 1, 4, 16 or 64 KiB each (nginx keepalive_timeout 0: one
# request per connection); session caches and tickets are off, so every handshake is a full one.
# Every client, server and transfer is checked (HTTP 200 and the expected byte count per
# request, TLS version and client-certificate status in nginx's log), and tcpdump must report
# 0 packets dropped.
# Environment: BULK_MB (MiB per bulk download, 64), PARALLEL (connections in flight per curl, 16),
# KEEP_WORK=1 (keep the temporary directory with certificates and logs), KEYLOG=1 (write
# OUT.keylog, the clients' key log, as SSLKEYLOGFILE does).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

OUT=""
SCALE=1
while [ $# -gt 0 ]; do
    case $1 in
        --scale) SCALE=${2:?--scale needs a number}; shift 2 ;;
        --scale=*) SCALE=${1#--scale=}; shift ;;
        -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) [ -z "$OUT" ] || { echo "one output file only" >&2; exit 2; }; OUT=$1; shift ;;
    esac
done
[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v s="$SCALE" 'BEGIN { exit !(s > 0) }' ||
    { echo "--scale must be a positive number" >&2; exit 2; }
if [ -z "$OUT" ]; then
    mkdir -p "$HERE/out"
    if [ "$SCALE" = 1 ]; then OUT=$HERE/out/capture.pcap; else OUT=$HERE/out/capture-x$SCALE.pcap; fi
fi
mkdir -p "$(dirname "$OUT")"
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
TRUTH=${OUT%.pcap}.truth.tsv
[ "$TRUTH" != "$OUT" ] || TRUTH=$OUT.truth.tsv
# KEYLOG=1: every curl appends its TLS secrets to OUT.keylog (SSLKEYLOGFILE), a key log that
# covers every TLS connection, for benches/keylog-ratio.sh.
if [ "${KEYLOG:-0}" = 1 ]; then
    export SSLKEYLOGFILE=${OUT%.pcap}.keylog
    : >"$SSLKEYLOGFILE"
fi

# Connections per scenario at scale 1 (x SCALE; a fraction such as 0.05 makes a quick smoke run).
scaled() { awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s + 0.5); print (v < 1 ? 1 : v) }'; }
N_TLS13_MTLS=$(scaled 4000)
N_TLS13=$(scaled 3000)
N_TLS12_MTLS=$(scaled 1500)
N_TLS12=$(scaled 1500)
N_PLAIN=$(scaled 2000)
N_BULK=$(scaled 4)
BULK_MB=${BULK_MB:-64}   # MiB per bulk download
PARALLEL=${PARALLEL:-16}   # concurrent connections per curl client

CLI_NS=mtlscope-bench-cli
SRV_NS=mtlscope-bench-srv
CLI_IF=mb-cli
SRV_IF=mb-srv
CLI_IP=10.77.0.1
SRV_IP=10.77.0.2
CLI_MAC=02:00:0a:4d:00:01
SRV_MAC=02:00:0a:4d:00:02

WORK=""
TCPDUMP_PID=""
BG_PIDS=()
T0=$EPOCHREALTIME
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

log() { printf '[gen-capture %6ss] %s\n' "$(elapsed)" "$*" >&2; }
die() { printf '[gen-capture] ERROR: %s\n' "$*" >&2; exit 1; }

# ----------------------------------------------------------------------------------------------
# cleanup (every exit path)
# ----------------------------------------------------------------------------------------------
kill_pid() { # TERM, then KILL after 2 s; only processes started here
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }
teardown_netns() {
    local ns pid
    for ns in "$CLI_NS" "$SRV_NS"; do
        if ns_exists "$ns"; then
            # anything still running inside our own namespaces was started by this script
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill_pid "$pid"; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}
cleanup() {
    local rc=$?
    set +e
    trap - ERR
    if [ -n "$TCPDUMP_PID" ]; then kill -INT "$TCPDUMP_PID" 2>/dev/null; sleep 0.3; kill_pid "$TCPDUMP_PID"; fi
    local p
    for p in "${BG_PIDS[@]}"; do kill_pid "$p"; done
    teardown_netns
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ -n "${KEEP_WORK:-}" ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    fi
    if [ "$rc" -ne 0 ]; then rm -f "$TRUTH" "$TRUTH.tmp"; log "failed (exit $rc); $OUT is incomplete"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

need() { command -v "$1" >/dev/null 2>&1 || die "missing tool '$1' (Debian: openssl nginx curl tcpdump iproute2 ethtool; or .ci/install-deps --test)"; }
[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, tcpdump)"
for t in ip ss openssl tcpdump nginx curl ethtool timeout awk; do need "$t"; done

WORK=$(mktemp -d /tmp/mtlscope-bench.XXXXXX)
chmod 755 "$WORK"   # nginx workers run as nobody
log "scale $SCALE -> $OUT (work dir $WORK)"

# ----------------------------------------------------------------------------------------------
# namespaces: cli <-> veth <-> srv; static ARP and no IPv6, so the capture has no noise
# ----------------------------------------------------------------------------------------------
teardown_netns
ip netns add "$CLI_NS"
ip netns add "$SRV_NS"
ip link add "$CLI_IF" netns "$CLI_NS" address "$CLI_MAC" mtu 1500 type veth \
    peer name "$SRV_IF" netns "$SRV_NS" address "$SRV_MAC" mtu 1500
for side in cli srv; do
    if [ $side = cli ]; then ns=$CLI_NS ifc=$CLI_IF ip=$CLI_IP peer_ip=$SRV_IP peer_mac=$SRV_MAC
    else ns=$SRV_NS ifc=$SRV_IF ip=$SRV_IP peer_ip=$CLI_IP peer_mac=$CLI_MAC; fi
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$ip/24" dev "$ifc"
    ip -n "$ns" link set "$ifc" up
    ip -n "$ns" neigh replace "$peer_ip" lladdr "$peer_mac" dev "$ifc" nud permanent
    ip netns exec "$ns" ethtool -K "$ifc" tso off gso off gro off tx off >/dev/null 2>&1 ||
        ip netns exec "$ns" ethtool -K "$ifc" tso off gso off gro off >/dev/null
    ip netns exec "$ns" ethtool -k "$ifc" | grep -Eq '^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload): on' &&
        die "could not turn offloads off on $ifc"
done
# a wide ephemeral range: no 4-tuple is reused within one capture, even at --scale 4
ip netns exec "$CLI_NS" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
ip netns exec "$SRV_NS" sysctl -qw net.core.somaxconn=4096
for i in $(seq 50); do
    ip -n "$CLI_NS" -o link show "$CLI_IF" | grep -q "state UP" &&
        ip -n "$SRV_NS" -o link show "$SRV_IF" | grep -q "state UP" && break
    sleep 0.1
done

# ----------------------------------------------------------------------------------------------
# certificates and content
# ----------------------------------------------------------------------------------------------
C=$WORK/certs
mkdir -p "$C"
(
    cd "$C"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
        -subj "/CN=mtlscope bench CA" -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    leaf() { # name rsa|ec CN eku san
        if [ "$2" = rsa ]; then openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null
        else openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; fi
        openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr" 2>/dev/null
        printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$4" "$5" >"$1.ext"
        openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
            -extfile "$1.ext" -out "$1.pem" 2>/dev/null
        openssl verify -CAfile ca.pem "$1.pem" >/dev/null
    }
    leaf server-ec ec server.test serverAuth DNS:server.test
    leaf server-rsa rsa server.test serverAuth DNS:server.test
    leaf client-ec ec client.test clientAuth "URI:spiffe://bench.local/ns/load/sa/client"
    leaf client-rsa rsa client.test clientAuth DNS:client.test
)
chmod 644 "$C"/*
W=$WORK/www
mkdir -p "$W"
SIZES=(1 4 16 64)   # KiB
for k in "${SIZES[@]}"; do head -c $((k * 1024)) /dev/urandom >"$W/${k}k.bin"; done
head -c $((BULK_MB * 1024 * 1024)) /dev/urandom >"$W/bulk.bin"
chmod 644 "$W"/*
log "certificates and content ready"

# ----------------------------------------------------------------------------------------------
# servers
# ----------------------------------------------------------------------------------------------
srv_bg() { # name dir cmd...: start a server in the server namespace, working directory dir
    local name=$1 dir=$2; shift 2
    (cd "$dir" && exec ip netns exec "$SRV_NS" "$@") </dev/null >"$WORK/$name.out" 2>"$WORK/$name.err" &
    BG_PIDS+=("$!")
    LAST_PID=$!
}
wait_listen() { # port pid
    local i
    for i in $(seq 100); do
        ip netns exec "$SRV_NS" ss -Hltn "sport = :$1" | grep -q . && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK"/*.err >&2 || true
    die "server did not listen on port $1"
}

N=$WORK/nginx
mkdir -p "$N"
tls_server() { # port protocols cert verify(on|off)
    cat <<EOF
    server {
        listen $SRV_IP:$1 ssl backlog=4096;
        server_name server.test;
        ssl_protocols $2;
        ssl_certificate $C/$3.pem;
        ssl_certificate_key $C/$3.key;
        ssl_client_certificate $C/ca.pem;
        ssl_verify_client $4;
        location / { }
    }
EOF
}
cat >"$N/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $N/nginx.pid;
error_log $N/error.log warn;
events { worker_connections 4096; }
http {
    log_format bench '\$server_port \$status \$body_bytes_sent \$ssl_protocol \$ssl_client_verify \$connection_requests \$request_uri';
    access_log $N/access.log bench buffer=1m;
    client_body_temp_path $N/body;
    proxy_temp_path $N/proxy;
    fastcgi_temp_path $N/fastcgi;
    uwsgi_temp_path $N/uwsgi;
    scgi_temp_path $N/scgi;
    root $W;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 0;
    ssl_session_cache off;
    ssl_session_tickets off;
$(tls_server 4431 TLSv1.3 server-ec on)
$(tls_server 4432 TLSv1.3 server-ec off)
$(tls_server 4433 TLSv1.2 server-rsa on)
$(tls_server 4434 TLSv1.2 server-rsa off)
    server {
        listen $SRV_IP:8080 backlog=4096;
        server_name server.test;
        location / { }
    }
}
EOF
srv_bg nginx "$N" nginx -p "$N" -c "$N/nginx.conf" -e "$N/error.log"
NGINX_PID=$LAST_PID
for p in 4431 4432 4433 4434 8080; do wait_listen $p "$NGINX_PID"; done

# bulk: OpenSSL's own server, TLS 1.3, client certificate required; exits after N_BULK connections
# (s_server -WWW serves files relative to its working directory)
srv_bg s_server "$W" timeout 3600 openssl s_server -4 -accept 9000 -naccept "$N_BULK" -WWW -tls1_3 \
    -cert "$C/server-ec.pem" -key "$C/server-ec.key" -Verify 1 -CAfile "$C/ca.pem" -verify_return_error
S_SERVER_PID=$LAST_PID
wait_listen 9000 "$S_SERVER_PID"
log "servers listening (nginx: 4431-4434, 8080; openssl s_server: 9000)"

# ----------------------------------------------------------------------------------------------
# capture
# ----------------------------------------------------------------------------------------------
rm -f "$OUT" "$TRUTH"
ip netns exec "$SRV_NS" tcpdump -i "$SRV_IF" -n -s 0 -B 65536 --immediate-mode -Z root -w "$OUT" \
    </dev/null 2>"$WORK/tcpdump.err" &
TCPDUMP_PID=$!
for i in $(seq 100); do
    grep -q "listening on" "$WORK/tcpdump.err" && break
    kill -0 "$TCPDUMP_PID" 2>/dev/null || { cat "$WORK/tcpdump.err" >&2; die "tcpdump did not start"; }
    sleep 0.1
done
sleep 0.2
log "tcpdump capturing on $SRV_IF"

# ----------------------------------------------------------------------------------------------
# clients
# ----------------------------------------------------------------------------------------------
# One curl per scenario, each with $PARALLEL connections in flight; a curl config file lists
# the URLs (sizes in rotation) so every transfer has its own output (/dev/null).
CURL_PIDS=()
run_curl() { # name port scheme count curl-args...
    local name=$1 port=$2 scheme=$3 count=$4; shift 4
    local cfg=$WORK/$name.curlrc
    awk -v n="$count" -v base="$scheme://server.test:$port" -v sizes="${SIZES[*]}" 'BEGIN {
        k = split(sizes, s, " ")
        for (i = 0; i < n; i++) {
            printf "url = \"%s/%sk.bin?c=%d\"\noutput = \"/dev/null\"\n", base, s[i % k + 1], i
        }
    }' >"$cfg"
    ip netns exec "$CLI_NS" timeout 3000 curl -sS --no-progress-meter --parallel --parallel-max "$PARALLEL" \
        --resolve "server.test:$port:$SRV_IP" --no-sessionid --cacert "$C/ca.pem" \
        -w '%{http_code} %{size_download}\n' "$@" -K "$cfg" \
        >"$WORK/$name.codes" 2>"$WORK/$name.err" &
    CURL_PIDS+=("$!")
    BG_PIDS+=("$!")
}
bulk_clients() { # sequential bulk downloads
    local i
    for i in $(seq "$N_BULK"); do
        ip netns exec "$CLI_NS" timeout 600 curl -sS --http1.0 -o /dev/null -w '%{http_code} %{size_download}\n' \
            --resolve "server.test:9000:$SRV_IP" --no-sessionid --cacert "$C/ca.pem" --tlsv1.3 \
            --cert "$C/client-rsa.pem" --key "$C/client-rsa.key" \
            "https://server.test:9000/bulk.bin" || echo "curl-exit-$?"
        sleep 1
    done
}
bulk_clients >"$WORK/bulk.codes" 2>"$WORK/bulk.err" &
BULK_PID=$!
BG_PIDS+=("$BULK_PID")

run_curl tls13-mtls 4431 https "$N_TLS13_MTLS" --tlsv1.3 --cert "$C/client-ec.pem" --key "$C/client-ec.key"
run_curl tls13 4432 https "$N_TLS13" --tlsv1.3
run_curl tls12-mtls 4433 https "$N_TLS12_MTLS" --tlsv1.2 --tls-max 1.2 --cert "$C/client-rsa.pem" --key "$C/client-rsa.key"
run_curl tls12 4434 https "$N_TLS12" --tlsv1.2 --tls-max 1.2
run_curl plain 8080 http "$N_PLAIN"
log "clients running: $((N_TLS13_MTLS + N_TLS13 + N_TLS12_MTLS + N_TLS12 + N_PLAIN)) small connections in 5 curl clients x $PARALLEL, $N_BULK bulk downloads of $BULK_MB MB"

rc=0
for p in "${CURL_PIDS[@]}"; do wait "$p" || rc=$?; done
log "small-connection clients done (rc $rc)"
wait "$BULK_PID" || rc=$?
log "bulk downloads done"
[ "$rc" -eq 0 ] || { tail -n 5 "$WORK"/*.err >&2; die "a client failed"; }

# wait for the s_server to have served its N_BULK connections and exit
for i in $(seq 100); do kill -0 "$S_SERVER_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$S_SERVER_PID" 2>/dev/null && die "openssl s_server did not finish its $N_BULK connections"
sleep 1   # last FIN/ACKs
kill -INT "$TCPDUMP_PID"
wait "$TCPDUMP_PID" || true
TCPDUMP_PID=""
kill -QUIT "$NGINX_PID"   # graceful: flushes the access log buffer
for i in $(seq 100); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
log "capture stopped: $(grep -E 'packets? (captured|received|dropped)' "$WORK/tcpdump.err" | tr '\n' ',' | sed 's/,$//')"

# ----------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------
grep -Eq '^0 packets dropped by kernel' "$WORK/tcpdump.err" || die "tcpdump dropped packets (kernel)"
if grep -Eq 'packets dropped by interface' "$WORK/tcpdump.err"; then
    grep -Eq '^0 packets dropped by interface' "$WORK/tcpdump.err" || die "tcpdump dropped packets (interface)"
fi
PACKETS=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured.*/\1/p' "$WORK/tcpdump.err")
RECEIVED=$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter.*/\1/p' "$WORK/tcpdump.err")
[ -n "$PACKETS" ] && [ "$PACKETS" = "$RECEIVED" ] || die "tcpdump wrote $PACKETS of $RECEIVED packets"

size_of() { stat -c %s "$W/$1"; }
check_client() { # name count: every transfer HTTP 200 with the full file
    local name=$1 count=$2 bad
    bad=$(awk -v n="$count" '
        { seen++; if (NF != 2 || $1 != 200) bad++ }
        END { if (seen != n) printf "%d transfers of %d", seen, n; else if (bad) printf "%d not HTTP 200", bad }' \
        "$WORK/$name.codes")
    [ -z "$bad" ] || { tail -n 5 "$WORK/$name.err" >&2; die "client $name: $bad"; }
}
check_client tls13-mtls "$N_TLS13_MTLS"
check_client tls13 "$N_TLS13"
check_client tls12-mtls "$N_TLS12_MTLS"
check_client tls12 "$N_TLS12"
check_client plain "$N_PLAIN"
# every small transfer delivered exactly the file size
for name in tls13-mtls tls13 tls12-mtls tls12 plain; do
    awk -v a="$((1024))" -v b="$((4096))" -v c="$((16384))" -v d="$((65536))" \
        '$2 != a && $2 != b && $2 != c && $2 != d { bad++ } END { exit bad > 0 }' "$WORK/$name.codes" ||
        die "client $name: a transfer has an unexpected size"
done
awk -v n="$N_BULK" -v sz="$(size_of bulk.bin)" '$1 == 200 && $2 == sz { ok++ } END { exit ok != n }' "$WORK/bulk.codes" ||
    { cat "$WORK/bulk.codes" "$WORK/bulk.err" "$WORK/s_server.err" >&2; die "bulk downloads incomplete"; }

# nginx's own view: connections per port, TLS version, client certificate verified, one request each
check_nginx() { # port count protocol verify
    local got
    got=$(awk -v p="$1" -v proto="$3" -v ver="$4" '
        $1 == p { n++; if ($2 != 200 || $4 != proto || $5 != ver || $6 != 1) bad++ }
        END { printf "%d %d", n, bad }' "$N/access.log")
    [ "$got" = "$2 0" ] || die "nginx port $1: (requests, wrong) = ($got), expected $2 requests with $3/$4"
}
check_nginx 4431 "$N_TLS13_MTLS" TLSv1.3 SUCCESS
check_nginx 4432 "$N_TLS13" TLSv1.3 NONE
check_nginx 4433 "$N_TLS12_MTLS" TLSv1.2 SUCCESS
check_nginx 4434 "$N_TLS12" TLSv1.2 NONE
check_nginx 8080 "$N_PLAIN" - -

# the capture's view: connections (distinct client SYNs: 4-tuple + initial sequence number, so
# SYN retransmissions count once and a 4-tuple the client reuses counts again) per server port
log "counting SYNs in the capture"
tcpdump -r "$OUT" -nn -S 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn' 2>/dev/null |
    awk '{ sub(/:$/, "", $5); sub(/,$/, "", $9); n = split($5, d, ".")
           conn[$3 " " $5 " " $9] = d[n]; tuple[$3 " " $5] = d[n] }
         END { for (c in conn) per[conn[c]]++; for (t in tuple) tuples[tuple[t]]++
               for (p in per) print p, per[p], tuples[p] }' | sort -n >"$WORK/syns"
syn_count() { awk -v p="$1" '$1 == p { print $2 }' "$WORK/syns"; }

TOTAL=0
{
    printf '# mtlscope benchmark ground truth for %s\n' "$(basename "$OUT")"
    printf '# generated %s by benches/gen-capture.sh --scale %s; counts from the clients, nginx'"'"'s log and the SYNs in the capture\n' "$(date -u +%FT%TZ)" "$SCALE"
    printf 'port\tscenario\tverdict\ttls_version\tclient_cert\tserver\tclient\tconnections\n'
} >"$TRUTH.tmp"
REUSED=0
row() { # port scenario verdict version client_cert server client count
    local syn
    syn=$(syn_count "$1")
    REUSED=$((REUSED + ${syn:-0} - $(awk -v p="$1" '$1 == p { print $3 }' "$WORK/syns")))
    [ "${syn:-0}" = "$8" ] || die "port $1: $8 connections made but ${syn:-0} in the capture"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$TRUTH.tmp"
    TOTAL=$((TOTAL + $8))
}
row 4431 tls13-mtls mtls "TLS 1.3" yes "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')" "curl $(curl --version | awk 'NR==1{print $2}')" "$N_TLS13_MTLS"
row 4432 tls13-server-only tls "TLS 1.3" no nginx curl "$N_TLS13"
row 4433 tls12-mtls mtls "TLS 1.2" yes nginx curl "$N_TLS12_MTLS"
row 4434 tls12-server-only tls "TLS 1.2" no nginx curl "$N_TLS12"
row 8080 http-plaintext plaintext - - nginx curl "$N_PLAIN"
row 9000 bulk-tls13-mtls mtls "TLS 1.3" yes "openssl s_server" curl "$N_BULK"
other=$(awk '$1 != 4431 && $1 != 4432 && $1 != 4433 && $1 != 4434 && $1 != 8080 && $1 != 9000' "$WORK/syns")
[ -z "$other" ] || die "unexpected connections in the capture: $other"
BYTES=$(stat -c %s "$OUT")
printf '# total\t%s connections\t%s packets\t%s bytes\n' "$TOTAL" "$PACKETS" "$BYTES" >>"$TRUTH.tmp"
printf '# %s connections reuse the 4-tuple of an earlier connection (the server closed first, so the client port was free again)\n' "$REUSED" >>"$TRUTH.tmp"
mv "$TRUTH.tmp" "$TRUTH"

ELAPSED=$(elapsed)
log "done in ${ELAPSED%.*} s: $OUT ($((BYTES / 1000000)) MB, $PACKETS packets, $TOTAL connections, $REUSED of them on a reused 4-tuple, 0 dropped)"
log "ground truth: $TRUTH"
if command -v column >/dev/null; then grep -v '^#' "$TRUTH" | column -t -s $'\t' >&2; else grep -v '^#' "$TRUTH" >&2; fi
