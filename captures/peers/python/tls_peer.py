#!/usr/bin/env python3
"""Python ssl module client or server for captures/generate.sh (Python's defaults on OpenSSL).

    tls_peer.py server IP PORT 1.2|1.3 CERT KEY CA none|request|require
    tls_peer.py client IP PORT 1.2|1.3 CERT|- KEY|- CA SNI

Library defaults (ssl.PROTOCOL_TLS_SERVER / PROTOCOL_TLS_CLIENT: Python's own TLS 1.2 cipher
string, OpenSSL's TLS 1.3 suites) except one protocol version, the certificates, and verify_mode
CERT_NONE / CERT_OPTIONAL (request) / CERT_REQUIRED. The server accepts one connection, reads one
request, answers "HTTP/1.0 200 ok" and closes (close_notify, FIN); the client sends
"GET / HTTP/1.0" and reads until the server closes. Each side prints one "handshake ok" line.
"""
import socket
import ssl
import sys


def summary(s, peer):
    cert = s.getpeercert()
    who = "none"
    if cert:
        who = "CN=" + next((v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"), "")
    return f"handshake ok version={s.version()} suite={s.cipher()[0]} {peer}={who}"


def main():
    role, ip, port, ver = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    v = ssl.TLSVersion.TLSv1_3 if ver == "1.3" else ssl.TLSVersion.TLSv1_2
    if role == "server":
        cert, key, ca, auth = sys.argv[5:9]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ctx.maximum_version = v
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(ca)
        ctx.verify_mode = {"none": ssl.CERT_NONE, "request": ssl.CERT_OPTIONAL, "require": ssl.CERT_REQUIRED}[auth]
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((ip, port))
        ls.listen(1)
        print("listening", flush=True)
        c, _ = ls.accept()
        s = ctx.wrap_socket(c, server_side=True)
        print(summary(s, "client_cert"), flush=True)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(1024)
            if not chunk:
                sys.exit("client closed before its request")
            got += chunk
        s.sendall(b"HTTP/1.0 200 ok\r\nContent-Type: text/plain\r\n\r\nhello from the capture peer\n")
        try:
            s.unwrap()          # close_notify; returns when the client answers or closes
        except OSError:
            pass
        c.close()
        return
    cert, key, ca, sni = sys.argv[5:9]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = v
    ctx.load_verify_locations(ca)
    if cert != "-":
        ctx.load_cert_chain(cert, key)
    s = ctx.wrap_socket(socket.create_connection((ip, port), timeout=10), server_hostname=sni)
    print(summary(s, "server_cert"), flush=True)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    resp = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ssl.SSLEOFError:
            break
        if not chunk:
            break
        resp += chunk
    print(resp.split(b"\r\n", 1)[0].decode("latin-1"), flush=True)
    s.close()


if __name__ == "__main__":
    main()
