#!/usr/bin/env python3
"""Send one TLS 1.2 ClientHello whose handshake message is SIZE bytes (default 300 KiB) long,
split into 16 KiB records, then read what the server answers until it closes.

    huge_client_hello.py IP PORT [SIZE]

No real ClientHello can exceed about 128 KiB: its cipher_suites and extensions vectors have 16-bit
lengths. So the message is a valid start (version, random, empty session ID, four ECDHE-GCM
suites, null compression, 65535 bytes of extensions: supported_groups, ec_point_formats,
signature_algorithms and one padding extension, no SNI) followed by zero filler up to the length
its header declares. A receiver that caps handshake messages (OpenSSL: 131396 bytes for a
ClientHello) rejects it from the 4-byte header alone.
Prints "sent N" once every byte has been acknowledged by the server's kernel (SIOCOUTQ is 0),
then "answer HEX" with the first bytes the server sent back, or "closed" / "reset".
"""
import fcntl
import os
import socket
import struct
import sys
import time

ip, port = sys.argv[1], int(sys.argv[2])
size = int(sys.argv[3]) if len(sys.argv) > 3 else 300 * 1024


def ext(t, body):
    return struct.pack("!HH", t, len(body)) + body


exts = ext(10, struct.pack("!H", 4) + bytes.fromhex("001d0017"))                       # x25519, secp256r1
exts += ext(11, bytes.fromhex("0100"))                                                 # uncompressed
exts += ext(13, struct.pack("!H", 8) + bytes.fromhex("0403080404010501"))              # sig algs
exts += ext(21, bytes(65535 - len(exts) - 4))                                          # padding (RFC 7685)
assert len(exts) == 65535
body = struct.pack("!H", 0x0303) + os.urandom(32) + b"\x00"
body += struct.pack("!H", 8) + bytes.fromhex("c02bc02fc02cc030") + b"\x01\x00"
body += struct.pack("!H", len(exts)) + exts
assert len(body) < size
body += bytes(size - len(body))
msg = struct.pack("!B", 1) + size.to_bytes(3, "big") + body
records = b"".join(struct.pack("!BHH", 22, 0x0301, len(msg[i:i + 16384])) + msg[i:i + 16384]
                   for i in range(0, len(msg), 16384))

s = socket.create_connection((ip, port), timeout=10)
s.sendall(records)
SIOCOUTQ = 0x5411
deadline = time.time() + 10
while struct.unpack("i", fcntl.ioctl(s.fileno(), SIOCOUTQ, b"\0" * 4))[0] and time.time() < deadline:
    time.sleep(0.01)
print("sent", len(records), "unacked", struct.unpack("i", fcntl.ioctl(s.fileno(), SIOCOUTQ, b"\0" * 4))[0], flush=True)
try:
    answer = s.recv(65536)
    print("answer", answer.hex() if answer else "closed", flush=True)
    while s.recv(65536):
        pass
except ConnectionResetError:
    print("reset", flush=True)
s.close()
