#!/usr/bin/env python3
"""A server that is not TLS: it waits for the client's first bytes (a TLS ClientHello in the
scenarios), answers them with a fixed banner, then waits until the client closes (at most 5 s).

    answer_server.py IP PORT BANNER      (BANNER with Python escapes, e.g. 'SSH-2.0-OpenSSH_9.2p1\\r\\n')

It prints the first bytes it received (hex) so generate.sh can check a ClientHello arrived.
"""
import socket
import sys

ip, port, banner = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode().decode("unicode_escape").encode("latin-1")
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((ip, port))
ls.listen(1)
print("listening", flush=True)
c, _ = ls.accept()
c.settimeout(5)
first = c.recv(65536)
print("received", first[:6].hex(), len(first), flush=True)
c.sendall(banner)
try:
    while c.recv(65536):
        pass
except (socket.timeout, ConnectionResetError):
    pass
c.close()
