#!/usr/bin/env python3
"""synthetic-flows.py - per-connection memory of mtlscope, measured with synthetic captures.

    benches/synthetic-flows.py                      # 100,000 and 1,000,000 flows, both kinds
    benches/synthetic-flows.py --flows 1000000      # one capture
    benches/synthetic-flows.py --kind hello --write-only --flows 50000

Writes pcaps (Ethernet, IPv4) of N TCP connections that are all still open at the end of the
capture (no FIN, no RST; 1 us between packets, so no idle timeout applies), one connection after
the other, then runs `mtlscope analyze FILE -o jsonl` on each under /usr/bin/time -v and prints
its peak RSS, and the growth per connection between the smallest and the largest capture:

  --kind hello  per connection: SYN, SYN-ACK, ACK, a TLS 1.3 ClientHello (with SNI), the
                ServerHello, the client's ACK. No verdict yet: every connection is still being
                inspected (the state of an undecided connection).
  --kind http   per connection: SYN, SYN-ACK, ACK, `GET /N HTTP/1.1`, `HTTP/1.1 204`, ACK. The
                verdict (plaintext) is final after the request: the state kept after a verdict.

Addresses: clients 10.77.128.0/17 (20,000 ports each), server 10.77.0.2:443 (hello) or :80
(http). Checksums (IP and TCP) are valid. Files go to benches/out/ (not committed).
"""
import argparse
import array
import os
import json
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CLI_MAC = bytes.fromhex("02000a4d0001")
SRV_MAC = bytes.fromhex("02000a4d0002")
SRV_IP = (10 << 24) | (77 << 16) | 2
PORTS_PER_IP = 20000


def words_sum(b: bytes) -> int:
    """Sum of big-endian 16-bit words (b padded to even length)."""
    if len(b) % 2:
        b += b"\0"
    a = array.array("H", b)
    if sys.byteorder == "little":
        a.byteswap()
    return sum(a)


def fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def client_hello() -> bytes:
    """A TLS 1.3 ClientHello as OpenSSL sends it, minus some extensions (about 250 bytes)."""
    def ext(t, body):
        return struct.pack("!HH", t, len(body)) + body

    sni = b"server.test"
    exts = b"".join([
        ext(0, struct.pack("!HBH", len(sni) + 3, 0, len(sni)) + sni),            # server_name
        ext(11, b"\x01\x00"),                                                      # ec_point_formats
        ext(10, struct.pack("!H", 8) + struct.pack("!4H", 0x1D, 0x17, 0x1E, 0x18)),  # supported_groups
        ext(16, struct.pack("!H", 12) + b"\x02h2\x08http/1.1"),                   # ALPN
        ext(13, struct.pack("!H", 16) + struct.pack("!8H", 0x0403, 0x0503, 0x0603, 0x0807,
                                                     0x0804, 0x0805, 0x0806, 0x0401)),  # sig algs
        ext(43, b"\x04\x03\x04\x03\x03"),                                          # supported_versions
        ext(45, b"\x01\x01"),                                                      # psk_key_exchange_modes
        ext(51, struct.pack("!HHH", 36, 0x1D, 32) + bytes(range(32))),             # key_share x25519
    ])
    suites = struct.pack("!5H", 0x1302, 0x1303, 0x1301, 0xC02C, 0xC02B)
    body = (b"\x03\x03" + bytes(32) + b"\x20" + bytes(range(100, 132))
            + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def server_hello() -> bytes:
    def ext(t, body):
        return struct.pack("!HH", t, len(body)) + body

    exts = ext(43, b"\x03\x04") + ext(51, struct.pack("!HH", 0x1D, 32) + bytes(range(64, 96)))
    body = (b"\x03\x03" + bytes(32) + b"\x20" + bytes(range(100, 132))
            + struct.pack("!H", 0x1301) + b"\x00" + struct.pack("!H", len(exts)) + exts)
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    rec = b"\x16\x03\x03" + struct.pack("!H", len(hs)) + hs
    return rec + b"\x14\x03\x03\x00\x01\x01"   # + ChangeCipherSpec (middlebox compatibility)


# Per-flow variation inside the payloads: 4 bytes of the hellos' random (TCP payload offset 12,
# even, so the checksum adjusts by two words); for http the request path is the flow number.
VARY_AT = 12


class Writer:
    def __init__(self, path):
        self.f = open(path, "wb", buffering=1 << 22)
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.buf = []
        self.ts_us = 1_700_000_000 * 1_000_000

    def packet(self, src, dst, sport, dport, seq, ack, flags, payload, psum):
        """psum: words_sum(payload), precomputed by the caller."""
        tcp_len = 20 + len(payload)
        total = 20 + tcp_len
        # IPv4 header: 4500 total id 4000 4006 csum src dst
        ipsum = fold(0x4500 + total + 0x4000 + 0x4006 + (src >> 16) + (src & 0xFFFF)
                     + (dst >> 16) + (dst & 0xFFFF))
        ip = struct.pack("!HHHHHHII", 0x4500, total, 0, 0x4000, 0x4006, ipsum ^ 0xFFFF, src, dst)
        off_flags = 0x5000 | flags
        s = (psum + (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 6 + tcp_len
             + sport + dport + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
             + off_flags + 64240)
        csum = fold(s) ^ 0xFFFF
        tcp = struct.pack("!HHIIHHHH", sport, dport, seq, ack, off_flags, 64240, csum, 0)
        eth = (SRV_MAC + CLI_MAC if src != SRV_IP else CLI_MAC + SRV_MAC) + b"\x08\x00"
        n = 14 + total
        self.ts_us += 1
        self.buf.append(struct.pack("<IIII", self.ts_us // 1_000_000, self.ts_us % 1_000_000, n, n))
        self.buf.append(eth + ip + tcp + payload)
        if len(self.buf) >= 8192:
            self.f.write(b"".join(self.buf))
            self.buf.clear()

    def close(self):
        self.f.write(b"".join(self.buf))
        self.f.close()


SYN, ACK, PSH = 0x02, 0x10, 0x08


def write_capture(path, flows, kind):
    w = Writer(path)
    ch, sh = client_hello(), server_hello()
    ch_sum, sh_sum = words_sum(ch[:VARY_AT] + b"\0\0\0\0" + ch[VARY_AT + 4:]), \
        words_sum(sh[:VARY_AT] + b"\0\0\0\0" + sh[VARY_AT + 4:])
    resp = b"HTTP/1.1 204 No Content\r\nServer: synthetic\r\n\r\n"
    resp_sum = words_sum(resp)
    dport = 443 if kind == "hello" else 80
    for i in range(flows):
        cli = (10 << 24) | (77 << 16) | (0x8000 + 1 + i // PORTS_PER_IP)
        sport = 10000 + i % PORTS_PER_IP
        c_isn = (i * 2654435761) & 0xFFFFFFFF
        s_isn = (i * 40503 + 12345) & 0xFFFFFFFF
        v = struct.pack("!I", i)
        vsum = (i >> 16) + (i & 0xFFFF)
        if kind == "hello":
            c_pay = ch[:VARY_AT] + v + ch[VARY_AT + 4:]
            s_pay = sh[:VARY_AT] + v + sh[VARY_AT + 4:]
            c_sum, s_sum = ch_sum + vsum, sh_sum + vsum
        else:
            c_pay = b"GET /%d HTTP/1.1\r\nHost: server.test\r\nUser-Agent: synthetic\r\nAccept: */*\r\n\r\n" % i
            s_pay, c_sum, s_sum = resp, words_sum(c_pay), resp_sum
        c1 = (c_isn + 1) & 0xFFFFFFFF
        s1 = (s_isn + 1) & 0xFFFFFFFF
        c2 = (c1 + len(c_pay)) & 0xFFFFFFFF
        s2 = (s1 + len(s_pay)) & 0xFFFFFFFF
        w.packet(cli, SRV_IP, sport, dport, c_isn, 0, SYN, b"", 0)
        w.packet(SRV_IP, cli, dport, sport, s_isn, c1, SYN | ACK, b"", 0)
        w.packet(cli, SRV_IP, sport, dport, c1, s1, ACK, b"", 0)
        w.packet(cli, SRV_IP, sport, dport, c1, s1, PSH | ACK, c_pay, c_sum)
        w.packet(SRV_IP, cli, dport, sport, s1, c2, PSH | ACK, s_pay, s_sum)
        w.packet(cli, SRV_IP, sport, dport, c2, s2, ACK, b"", 0)
    w.close()


def vm_rss_mb(time_pid):
    """Current RSS of mtlscope, the child of /usr/bin/time (None if it is gone)."""
    try:
        with open(f"/proc/{time_pid}/task/{time_pid}/children") as f:
            child = f.read().split()[0]
        with open(f"/proc/{child}/status") as f:
            for l in f:
                if l.startswith("VmRSS:"):
                    return int(l.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        return None
    return None


def measure(mtlscope, path):
    """Peak RSS (MB), RSS when the first output arrived, wall seconds and the summary line."""
    t0 = time.monotonic()
    tf = path + ".time"
    p = subprocess.Popen(["/usr/bin/time", "-v", "-o", tf, mtlscope, "analyze", path, "-o", "jsonl"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first_rss = None
    tail = b""
    while True:                 # the connections still open come out at the end: 1 line each
        chunk = p.stdout.read1(1 << 20)
        if not chunk:
            break
        if first_rss is None:
            first_rss = vm_rss_mb(p.pid)
        tail = (tail + chunk)[-65536:]
    err = p.stderr.read()
    rc = p.wait()
    wall = time.monotonic() - t0
    rss = None
    with open(tf) as f:
        for l in f:
            if "Maximum resident set size" in l:
                rss = int(l.rsplit(":", 1)[1]) / 1024
    os.unlink(tf)
    if rc != 0:
        sys.exit(f"mtlscope failed on {path} (exit {rc}): {err.decode(errors='replace')[-2000:]}")
    lines = tail.rstrip(b"\n").split(b"\n")
    summary = json.loads(lines[-1]).get("summary", {})
    return rss, first_rss, wall, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, action="append",
                    help="connections per capture (repeatable; default 100000 and 1000000)")
    ap.add_argument("--kind", choices=["hello", "http", "both"], default="both")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--mtlscope", default=os.path.join(ROOT, "target", "release", "mtlscope"))
    ap.add_argument("--write-only", action="store_true", help="write the captures, do not run mtlscope")
    ap.add_argument("--keep", action="store_true", help="keep the captures (default: delete after measuring)")
    a = ap.parse_args()
    flows = sorted(set(a.flows or [100_000, 1_000_000]))
    kinds = ["hello", "http"] if a.kind == "both" else [a.kind]
    os.makedirs(a.out, exist_ok=True)
    if not a.write_only and not os.access(a.mtlscope, os.X_OK):
        sys.exit(f"no {a.mtlscope}: cargo build --release first")

    results = {}
    for kind in kinds:
        for n in flows:
            path = os.path.join(a.out, f"synthetic-{kind}-{n}.pcap")
            t0 = time.monotonic()
            write_capture(path, n, kind)
            size = os.path.getsize(path)
            print(f"[synthetic] wrote {path}: {n} connections, {6 * n} packets, {size / 1e6:.0f} MB "
                  f"in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
            if a.write_only:
                continue
            subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)   # page cache
            rss, first_rss, wall, summary = measure(a.mtlscope, path)
            results[(kind, n)] = (rss, first_rss, wall, summary)
            print(f"[synthetic]   mtlscope: {wall:.2f} s, peak RSS {rss:.1f} MB, RSS at its first output "
                  f"{first_rss or 0:.1f} MB, {summary.get('connections')} connections reported, "
                  f"verdicts {summary.get('verdicts')}, evicted {summary.get('evicted_flows')}",
                  file=sys.stderr, flush=True)
            if not a.keep:
                os.unlink(path)
    if a.write_only:
        return

    print()
    print("| connections open at the end | kind | mtlscope wall s | peak RSS MB | peak RSS / connection "
          "| RSS at first output MB |")
    print("|---:|---|---:|---:|---:|---:|")
    for (kind, n), (rss, first_rss, wall, _) in sorted(results.items()):
        print(f"| {n:,} | {kind} | {wall:.2f} | {rss:.1f} | {rss * 1048576 / n:.0f} B | {first_rss or 0:.1f} |")
    print()
    print("(RSS at first output: sampled when mtlscope writes its first line; for `hello` no connection is "
          "decided before the end of the capture, so this is the state of all open connections before the "
          "end-of-capture reports are built; for `http` it is taken early in the run.)")
    print()
    if len(flows) >= 2:
        lo, hi = flows[0], flows[-1]
        for kind in kinds:
            d = (results[(kind, hi)][0] - results[(kind, lo)][0]) * 1048576 / (hi - lo)
            what = ("undecided (handshake in progress)" if kind == "hello"
                    else "after its verdict (plaintext decided)")
            line = f"- {kind}: {d:.0f} bytes per connection {what}: (peak RSS at {hi:,} - at {lo:,}) / {hi - lo:,}"
            f_hi, f_lo = results[(kind, hi)][1], results[(kind, lo)][1]
            if kind == "hello" and f_hi and f_lo:
                line += f"; from the RSS at first output: {(f_hi - f_lo) * 1048576 / (hi - lo):.0f} bytes"
            print(line)
        print(f"- targets (issue 7): <= 512 bytes per connection after its verdict; "
              f"1,000,000 concurrent connections in <= 1024 MB")


if __name__ == "__main__":
    main()
