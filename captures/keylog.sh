# keylog.sh - the TLS 1.3 scenarios whose peers write a key log (docs/keylogs.md), sourced by
# generate.sh. Each leaves NAME.keylog beside NAME.pcap (finish() moves it), except the pcapng
# that carries its secrets in a Decryption Secrets Block. The expected files add the SHA-256 of
# the client certificate's DER (`ccert=`), from the PEM the client was given;
# verify-captures.py checks it against tshark's own decryption with the same key log.

keylog_file() { printf '%s' "$WORK/$CUR_NAME.keylog"; }
cert_sha256() { openssl x509 -in "$C/$1.pem" -outform DER | sha256sum | cut -d' ' -f1; }
# the key log has the connection's two handshake secrets
keylog_ok() { # [connections]
    local n=${1:-1} f; f=$(keylog_file)
    [ "$(grep -c '^CLIENT_HANDSHAKE_TRAFFIC_SECRET ' "$f")" -ge "$n" ] &&
        [ "$(grep -c '^SERVER_HANDSHAKE_TRAFFIC_SECRET ' "$f")" -ge "$n" ] ||
        die "$f: fewer than $n connection(s) of handshake secrets"
}

scenario openssl-tls13-keylog-mtls-aes128
sc_openssl_tls13_keylog_mtls_aes128() {
    begin openssl-tls13-keylog-mtls-aes128 pcap
    ossl_single 4480 1.3 rsa mtls-rsa "${SNI[@]}" -ciphersuites TLS_AES_128_GCM_SHA256 -keylogfile "$(keylog_file)"
    keylog_ok
    expect port=4480 verdict=mtls conf=certain "ver=TLS 1.3" sni=server.test req=true hs=complete \
        cid=$CID_RSA sid=$SID_RSA "ccert=$(cert_sha256 client-rsa)"
    finish "OpenSSL s_client -keylogfile -> s_server, TLS 1.3 TLS_AES_128_GCM_SHA256, client presents RSA cert; key log in openssl-tls13-keylog-mtls-aes128.keylog"
}

scenario openssl-tls13-keylog-mtls-aes256
sc_openssl_tls13_keylog_mtls_aes256() {
    begin openssl-tls13-keylog-mtls-aes256 pcap
    ossl_single 4481 1.3 ec mtls-ec "${SNI[@]}" -ciphersuites TLS_AES_256_GCM_SHA384 -keylogfile "$(keylog_file)"
    keylog_ok
    expect port=4481 verdict=mtls conf=certain "ver=TLS 1.3" sni=server.test req=true hs=complete \
        cid=$CID_EC sid=$SID_EC "ccert=$(cert_sha256 client-ec)"
    finish "OpenSSL s_client -keylogfile -> s_server, TLS 1.3 TLS_AES_256_GCM_SHA384 (SHA-384 key schedule), ECDSA P-256 certs on both sides; key log beside"
}

scenario openssl-tls13-keylog-server-only-chacha20
sc_openssl_tls13_keylog_server_only_chacha20() {
    begin openssl-tls13-keylog-server-only-chacha20 pcap
    ossl_single 4482 1.3 rsa none "${SNI[@]}" -ciphersuites TLS_CHACHA20_POLY1305_SHA256 -keylogfile "$(keylog_file)"
    keylog_ok
    expect port=4482 verdict=tls conf=certain "ver=TLS 1.3" sni=server.test req=false hs=complete sid=$SID_RSA
    finish "OpenSSL s_client -keylogfile -> s_server, TLS 1.3 TLS_CHACHA20_POLY1305_SHA256, no client certificate requested; key log beside"
}

scenario openssl-tls13-keylog-empty-client-cert
sc_openssl_tls13_keylog_empty_client_cert() {
    begin openssl-tls13-keylog-empty-client-cert pcap
    ossl_single 4483 1.3 rsa empty "${SNI[@]}" -keylogfile "$(keylog_file)"
    keylog_ok
    expect port=4483 verdict=tls conf=certain "ver=TLS 1.3" sni=server.test req=true hs=complete sid=$SID_RSA
    finish "OpenSSL s_client -keylogfile -> s_server -verify 1, TLS 1.3 (OpenSSL's default suite), certificate requested, client sends an empty Certificate; key log beside"
}

scenario openssl-tls13-keylog-hrr-mtls
sc_openssl_tls13_keylog_hrr_mtls() {
    begin openssl-tls13-keylog-hrr-mtls pcap
    # The client's key share is X25519 only; the server accepts P-256 only: HelloRetryRequest,
    # then a second ClientHello (same random) with a P-256 share.
    s_server_start 4484 1 -tls1_3 "${SRV_RSA[@]}" "${REQ_CERT[@]}" -groups P-256
    s_client_get 4484 -tls1_3 "${CLI_RSA[@]}" "${SNI[@]}" -groups X25519:P-256 -keylogfile "$(keylog_file)"
    s_server_wait; client_ok; server_saw_client_cert yes
    keylog_ok
    expect port=4484 verdict=mtls conf=certain "ver=TLS 1.3" sni=server.test req=true hs=complete \
        cid=$CID_RSA sid=$SID_RSA "ccert=$(cert_sha256 client-rsa)"
    finish "OpenSSL s_client -groups X25519:P-256 -keylogfile -> s_server -groups P-256: HelloRetryRequest, then TLS 1.3 mTLS with RSA client cert; key log beside"
}

scenario openssl-tls13-keylog-resume-psk-mtls
sc_openssl_tls13_keylog_resume_psk_mtls() {
    begin openssl-tls13-keylog-resume-psk-mtls pcap
    local port=4485
    local -a cargs=(-tls1_3 "${SNI[@]}" "${CLI_RSA[@]}" -keylogfile "$WORK/$CUR_NAME.keylog")
    s_server_start "$port" 2 -tls1_3 "${SRV_RSA[@]}" "${REQ_CERT[@]}"
    s_client_get "$port" "${cargs[@]}" -sess_out "$WORK/sess.$port.pem"
    client_ok; client_new
    sleep 0.3
    s_client_get "$port" "${cargs[@]}" -sess_in "$WORK/sess.$port.pem"
    client_ok; client_reused
    s_server_wait
    keylog_ok 2
    expect port=$port verdict=mtls conf=certain "ver=TLS 1.3" sni=server.test req=true hs=complete \
        cid=$CID_RSA sid=$SID_RSA "ccert=$(cert_sha256 client-rsa)"
    # Decrypted: a PSK handshake has no Certificate messages and no CertificateRequest; the
    # ticket that links it to the first is encrypted under application keys, never decrypted,
    # so the resumption rules stand (docs/verdicts.md): tls, uncertain.
    expect port=$port verdict=tls conf=uncertain "ver=TLS 1.3" sni=server.test resumed=true req=false hs=complete
    finish "OpenSSL TLS 1.3 with -keylogfile: full mTLS handshake (RSA client cert), then PSK resumption of it (no certificates); key log of both beside"
}

scenario openssl-tls13-keylog-wrong-key
sc_openssl_tls13_keylog_wrong_key() {
    begin openssl-tls13-keylog-wrong-key pcap
    local real=$WORK/real.keylog
    ossl_single 4486 1.3 rsa mtls-rsa "${SNI[@]}" -keylogfile "$real"
    # The right random, secrets with one bit flipped: every record fails to authenticate.
    python3 - "$real" "$(keylog_file)" <<'PY'
import sys
out = []
for line in open(sys.argv[1]):
    w = line.split()
    if len(w) == 3 and w[0].endswith("HANDSHAKE_TRAFFIC_SECRET"):
        s = bytearray(bytes.fromhex(w[2]))
        s[0] ^= 1
        w[2] = s.hex()
    out.append(" ".join(w) + "\n")
open(sys.argv[2], "w").writelines(out)
PY
    keylog_ok
    # The key log is wrong for this connection: the verdict is the length inference's.
    expect port=4486 verdict=mtls conf=inferred "ver=TLS 1.3" sni=server.test req=true hs=complete
    finish "OpenSSL TLS 1.3 mTLS (RSA client cert) with a key log whose handshake secrets have one bit flipped: the records do not authenticate"
}

scenario openssl-tls13-keylog-dsb-mtls
sc_openssl_tls13_keylog_dsb_mtls() {
    begin openssl-tls13-keylog-dsb-mtls pcapng nocapture
    local raw=$WORK/dsb-raw.pcap keys=$WORK/dsb.keylog
    cap_start "$raw"
    ossl_single 4487 1.3 ec mtls-ec "${SNI[@]}" -keylogfile "$keys"
    cap_stop
    editcap --inject-secrets "tls,$keys" -F pcapng "$raw" "$CUR_FILE"
    expect port=4487 verdict=mtls conf=certain "ver=TLS 1.3" sni=server.test req=true hs=complete \
        cid=$CID_EC sid=$SID_EC "ccert=$(cert_sha256 client-ec)"
    finish "OpenSSL TLS 1.3 mTLS (ECDSA certs), the key log injected into the pcapng as a Decryption Secrets Block (editcap --inject-secrets tls,FILE): no key log file needed"
}

scenario nginx-curl-tls13-keylog
sc_nginx_curl_tls13_keylog() {
    begin nginx-curl-tls13-keylog pcap
    # Exported to curl (nginx ignores it): curl's OpenSSL backend appends to SSLKEYLOGFILE.
    SSLKEYLOGFILE=$(keylog_file) nginx_curl 1.3
    keylog_ok 2
    expect port=8443 verdict=mtls conf=certain "ver=TLS 1.3" sni=server.test req=true hs=complete \
        cid=$CID_RSA sid=$SID_RSA "ccert=$(cert_sha256 client-rsa)"
    expect port=8443 verdict=tls conf=certain "ver=TLS 1.3" sni=server.test req=true hs=complete sid=$SID_RSA
    finish "nginx ssl_verify_client on, TLS 1.3, curl with SSLKEYLOGFILE: curl --cert (mTLS, HTTP 200), then curl without --cert (empty client Certificate, HTTP 400); key log beside"
}

scenario gnutls-tls13-keylog-mtls-rsa
sc_gnutls_tls13_keylog_mtls_rsa() {
    begin gnutls-tls13-keylog-mtls-rsa pcap
    s_server_start 4488 1 -tls1_3 "${SRV_RSA[@]}" "${REQ_CERT[@]}"
    SSLKEYLOGFILE=$(keylog_file) gnutls_get 4488 "$GNUTLS13" client-rsa
    s_server_wait; server_saw_client_cert yes
    keylog_ok
    expect port=4488 verdict=mtls conf=certain "ver=TLS 1.3" sni=server.test req=true hs=complete \
        cid=$CID_RSA sid=$SID_RSA "ccert=$(cert_sha256 client-rsa)"
    finish "GnuTLS gnutls-cli with SSLKEYLOGFILE -> OpenSSL s_server -verify 1, TLS 1.3, client presents RSA cert; key log beside"
}

scenario go-tls13-keylog-mtls-rsa
sc_go_tls13_keylog_mtls_rsa() {
    peer_prepare go
    begin go-tls13-keylog-mtls-rsa pcap
    peer_run go 4489 1.3 mtls -keylog "$(keylog_file)"
    keylog_ok
    expect port=4489 verdict=mtls conf=certain "ver=TLS 1.3" sni=server.test req=true hs=complete \
        cid=$CID_RSA sid=$SID_RSA "ccert=$(cert_sha256 client-rsa)"
    configured "cstack=$(stack_label go)" "sstack=$(stack_label go)" "ver=TLS 1.3" "suite=$PEER_SUITE" req=true sent=true hs=complete
    finish "$(stack_label go) client with tls.Config.KeyLogWriter -> server, TLS 1.3 $PEER_SUITE, RSA server and client certificates, server requires a client certificate; key log beside"
}

scenario openssl-tls13-keylog-padding512-mtls
sc_openssl_tls13_keylog_padding512_mtls() {
    begin openssl-tls13-keylog-padding512-mtls pcap
    s_server_start 4490 1 -tls1_3 "${SRV_RSA[@]}" "${REQUIRE_CERT[@]}" -record_padding 512
    s_client_get 4490 -tls1_3 "${CLI_RSA[@]}" "${SNI[@]}" -record_padding 512 -keylogfile "$(keylog_file)"
    s_server_wait; client_ok; server_saw_client_cert yes
    keylog_ok
    # Padded, the lengths alone say tls (uncertain); decrypted, the client's Certificate is there:
    # the decrypted result wins, and the evidence says what the length inference said.
    expect port=4490 verdict=mtls conf=certain "ver=TLS 1.3" sni=server.test req=true hs=complete \
        cid=$CID_RSA sid=$SID_RSA "ccert=$(cert_sha256 client-rsa)"
    configured "cstack=$(OSSL_LABEL) s_client" "sstack=$(OSSL_LABEL) s_server" "ver=TLS 1.3" "suite=$(ossl_suite)" \
        req=true sent=true hs=complete padding=512
    finish "as openssl-tls13-padding512-mtls (every record padded to a multiple of 512 bytes, client presents RSA cert), with s_client -keylogfile; key log beside"
}

scenario istio-like-tls13-keylog-mtls-spiffe
sc_istio_like_tls13_keylog_mtls_spiffe() {
    begin istio-like-tls13-keylog-mtls-spiffe pcap
    s_server_start 9081 1 -tls1_3 "${SRV_SPIFFE[@]}" "${REQUIRE_CERT[@]}" -alpn istio-peer-exchange,istio
    s_client_get 9081 -tls1_3 "${CLI_SPIFFE[@]}" -servername "$ISTIO_SNI" -alpn istio-peer-exchange,istio \
        -keylogfile "$(keylog_file)"
    s_server_wait; client_ok; server_saw_client_cert yes
    keylog_ok
    # The workload identities that TLS 1.3 hides, decrypted: SPIFFE IDs on both sides.
    expect port=9081 verdict=mtls conf=certain "ver=TLS 1.3" sni=$ISTIO_SNI req=true hs=complete \
        cid=$SPIFFE_PRODUCTPAGE sid=$SPIFFE_REVIEWS "ccert=$(cert_sha256 spiffe-productpage)"
    finish "Istio-like sidecar mTLS over TLS 1.3 with s_client -keylogfile: SPIFFE certs (productpage -> reviews), SNI outbound_.9080_._.reviews..., ALPN istio-peer-exchange,istio; key log beside"
}
