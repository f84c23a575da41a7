#!/bin/sh
# Builds fuzz/corpus/<target>/ from the project's real captures (captures/*.pcap*) and test
# certificates (tests/data/certs/*.der). Corpora are not committed; rerun this to regenerate.
# Needs python3 and, for certificates and SNIs, tshark (skipped with a warning when missing).
#   fuzz/seed.sh            seed every target (existing corpus files are kept)
#   fuzz/seed.sh --clean    remove the corpora first
set -eu
cd "$(dirname "$0")"
root=$(cd .. && pwd)
if [ "${1:-}" = "--clean" ]; then rm -rf corpus; fi
for t in capture_file decode reassembly tls_stream certificate plaintext mesh rules policy; do
  mkdir -p "corpus/$t"
done

# capture_file: whole capture files, plus gzip and truncated variants.
for f in "$root"/captures/*.pcap*; do
  cp "$f" corpus/capture_file/
done
gzip -9 -n -c "$root/captures/openssl-tls13-mtls-rsa.pcap" > corpus/capture_file/openssl-tls13-mtls-rsa.pcap.gz
head -c 3000 "$root/captures/openssl-tls12-mtls-rsa.pcap" > corpus/capture_file/openssl-tls12-mtls-rsa.truncated.pcap
head -c 3000 "$root/captures/mixed-linktypes.pcapng" > corpus/capture_file/mixed-linktypes.truncated.pcapng

# Certificates: the DER test files, and every certificate the captures carry in clear.
cp "$root"/tests/data/certs/*.der corpus/certificate/
if command -v tshark >/dev/null 2>&1; then
  for f in "$root"/captures/*.pcap*; do
    tshark -r "$f" -Y tls.handshake.certificate -T fields -e tls.handshake.certificate 2>/dev/null
  done > corpus/.certs.hex
  for f in "$root"/captures/*.pcap*; do
    tshark -r "$f" -Y tls.handshake.type==1 -T fields -E separator=/t -E aggregator=/s \
      -e tcp.dstport -e tls.handshake.extensions_server_name -e tls.handshake.extensions_alpn_str \
      2>/dev/null
  done > corpus/.hellos.tsv
else
  echo "seed.sh: tshark not found, no certificates or SNIs from the captures" >&2
  : > corpus/.certs.hex
  : > corpus/.hellos.tsv
fi

python3 - "$root" <<'PY'
"""Reads the captures with a tiny pcap/pcapng reader and writes the per-target seeds in the
input layouts documented at the top of each fuzz_targets/*.rs."""
import glob, gzip, hashlib, os, struct, sys

root = sys.argv[1]
corpus = "corpus"

def put(target, data, hint=""):
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(corpus, target, (hint + "-" if hint else "") + name), "wb") as f:
        f.write(data)

def packets(path):
    """Yields (link type, frame bytes, orig_len) for pcap and pcapng files."""
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    magic = raw[:4]
    legacy = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
              b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}
    if magic in legacy:
        e = legacy[magic]
        link = struct.unpack(e + "I", raw[20:24])[0] & 0x03FFFFFF
        off = 24
        while off + 16 <= len(raw):
            _, _, incl, orig = struct.unpack(e + "IIII", raw[off:off + 16])
            yield link, raw[off + 16:off + 16 + incl], orig
            off += 16 + incl
        return
    if magic != b"\x0a\x0d\x0d\x0a":
        return
    off, e, links = 0, "<", []
    while off + 12 <= len(raw):
        btype = struct.unpack("<I", raw[off:off + 4])[0]
        if btype == 0x0A0D0D0A:
            e = "<" if raw[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        btype, blen = struct.unpack(e + "II", raw[off:off + 8])
        body = raw[off + 8:off + blen - 4]
        if btype == 1:
            links.append(struct.unpack(e + "H", body[:2])[0])
        elif btype == 6:
            iface, _, _, incl, orig = struct.unpack(e + "IIIII", body[:20])
            yield links[iface], body[20:20 + incl], orig
        elif btype == 3:
            orig = struct.unpack(e + "I", body[:4])[0]
            yield links[0], body[4:4 + orig], orig
        if blen < 12:
            break
        off += blen

# Index of each link type in the decode target's table.
LINK_INDEX = {1: 0, 0: 1, 108: 2, 101: 3, 12: 3, 14: 3, 113: 4, 276: 5, 228: 6, 229: 7}

def tcp_of(link, frame):
    """(src, dst, sport, dport, seq, ack, flags, payload, wire_len) or None."""
    if link == 1:
        et, off = struct.unpack(">H", frame[12:14])[0], 14
        while et in (0x8100, 0x88A8):
            et, off = struct.unpack(">H", frame[off + 2:off + 4])[0], off + 4
    elif link in (0, 108):
        fam = frame[:4]
        v = struct.unpack("<I", fam)[0] if link == 0 else struct.unpack(">I", fam)[0]
        if v not in (2, 24, 28, 30):
            v = struct.unpack(">I" if link == 0 else "<I", fam)[0]
        et, off = (0x0800 if v == 2 else 0x86DD), 4
    elif link == 113:
        et, off = struct.unpack(">H", frame[14:16])[0], 16
    elif link == 276:
        et, off = struct.unpack(">H", frame[0:2])[0], 20
    elif link in (101, 12, 14, 228, 229):
        et = 0x0800 if frame[0] >> 4 == 4 else 0x86DD
        off = 0
    else:
        return None
    ip = frame[off:]
    if et == 0x0800 and len(ip) >= 20:
        ihl = (ip[0] & 15) * 4
        if ip[9] != 6:
            return None
        total = struct.unpack(">H", ip[2:4])[0]
        src, dst, seg, announced = ip[12:16], ip[16:20], ip[ihl:total], total - ihl
    elif et == 0x86DD and len(ip) >= 40:
        if ip[6] != 6:
            return None
        plen = struct.unpack(">H", ip[4:6])[0]
        src, dst, seg, announced = ip[8:24], ip[24:40], ip[40:40 + plen], plen
    else:
        return None
    if len(seg) < 20:
        return None
    sport, dport, seq, ack = struct.unpack(">HHII", seg[:12])
    doff = (seg[12] >> 4) * 4
    payload = seg[doff:announced]
    return src, dst, sport, dport, seq, ack, seg[13], payload, max(announced - doff, len(payload))

def connections(path):
    """Per connection, in capture order: list of (dir, tcp tuple); dir 0 is the client."""
    conns = {}
    for link, frame, _ in packets(path):
        t = tcp_of(link, frame)
        if t is None:
            continue
        src, dst, sport, dport = t[:4]
        a, b = (src, sport), (dst, dport)
        key = (min(a, b), max(a, b))
        c = conns.setdefault(key, {"client": None, "segs": []})
        if c["client"] is None and (t[6] & 0x12 == 0x02 or t[7]):
            c["client"] = a  # SYN sender, else the first to send payload
        c["segs"].append((a, t))
    out = []
    for c in conns.values():
        client = c["client"] or c["segs"][0][0]
        out.append([(0 if a == client else 1, t) for a, t in c["segs"]])
    return out

captures = sorted(glob.glob(os.path.join(root, "captures", "*.pcap*")))
PORTS = [443, 8443, 15008, 4143]

for path in captures:
    name = os.path.basename(path).split(".")[0]
    # decode: single frames, 1 byte link-type index + frame.
    for i, (link, frame, _) in enumerate(packets(path)):
        if i < 40 and link in LINK_INDEX:
            put("decode", bytes([LINK_INDEX[link]]) + frame)
    for n, conn in enumerate(connections(path)):
        if n >= 4:
            break
        server_port = next((t[3] for d, t in conn if d == 0), 0)
        # tls_stream: chunks of 1 control byte (direction) + 2 bytes length + data, in order,
        # without retransmissions.
        seen = [None, None]
        chunks = []
        for d, t in conn:
            seq, payload = t[4], t[7]
            if not payload:
                continue
            end = (seq + len(payload)) & 0xFFFFFFFF
            if seen[d] is not None and ((end - seen[d]) & 0xFFFFFFFF) > 0x7FFFFFFF:
                continue
            seen[d] = end
            for k in range(0, len(payload), 0xFFFF):
                part = payload[k:k + 0xFFFF]
                chunks.append(bytes([d]) + struct.pack("<H", len(part)) + part)
        port_bits = (PORTS.index(server_port) << 3) if server_port in PORTS else 0
        if chunks:
            put("tls_stream", bytes([port_bits]) + b"".join(chunks), name)
            if len(chunks) > 6:
                # Picked up mid-stream: inspector and classifier both told so.
                put("tls_stream", bytes([port_bits | 7]) + b"".join(chunks[6:]), name + "-mid")
        # plaintext: 2 bytes server port, 2 bytes client length, client bytes, server bytes.
        first = [b"", b""]
        for d, t in conn:
            if t[7] and not first[d]:
                first[d] = t[7][:4096]
        if first[0] or first[1]:
            put("plaintext", struct.pack(">HH", server_port, len(first[0])) + first[0] + first[1], name)
        # reassembly: every segment of each direction with the other direction's ACKs.
        for d in (0, 1):
            syn = next((t[4] for dd, t in conn if dd == d and t[6] & 0x02), None)
            first_seq = next((t[4] for dd, t in conn if dd == d and t[8]), None)
            isn = syn if syn is not None else first_seq
            if isn is None:
                continue
            ops = []
            for dd, t in conn:
                if dd == d and t[8]:
                    payload_len, cut = len(t[7]), t[8] - len(t[7])
                    off = (t[4] - isn) & 0xFFFFFFFF
                    while payload_len > 0x3FFF:
                        ops.append(struct.pack("<BIHB", 0, off, 0x3FFF, 0))
                        off, payload_len = (off + 0x3FFF) & 0xFFFFFFFF, payload_len - 0x3FFF
                    ops.append(struct.pack("<BIHB", 0, off, payload_len, min(cut, 255)))
                elif dd != d and t[6] & 0x10:
                    ops.append(struct.pack("<BIHB", 2, (t[5] - isn) & 0xFFFFFFFF, 0, 0))
            cfg = 1 if syn is not None else 0
            head = struct.pack("<I", isn)
            put("reassembly", head + bytes([cfg]) + b"".join(ops), name)
            segs = [o for o in ops if o[0] == 0]
            if len(segs) > 2:
                # Out of order, small cap (64), and one segment sent again with other bytes.
                put("reassembly", head + bytes([cfg | 2]) + b"".join(reversed(ops)), name + "-rev")
                alt = bytes([3]) + segs[1][1:]
                put("reassembly", head + bytes([cfg]) + b"".join([segs[0], alt] + segs[1:]), name + "-alt")

# certificate: DER from the captures (tshark hex, comma-separated per message).
for line in open(os.path.join(corpus, ".certs.hex")):
    for h in line.strip().replace(":", "").split(","):
        if h:
            put("certificate", bytes.fromhex(h))

# mesh: 2 bytes port, 1 flag byte, SNI, then NUL-separated ALPN values.
def mesh(port, tls13, sni, alpns):
    flags = (1 if tls13 else 0) | (0 if sni is not None else 2)
    text = "\0".join([sni or ""] + list(alpns))
    put("mesh", struct.pack(">HB", port, flags) + text.encode())

for line in open(os.path.join(corpus, ".hellos.tsv")):
    f = line.rstrip("\n").split("\t") + ["", "", ""]
    port = int(f[0].split(" ")[0] or 0)
    mesh(port, True, f[1] or None, [a for a in f[2].split(" ") if a])
mesh(9080, False, "outbound_.9080_._.reviews.bookinfo.svc.cluster.local", ["istio-peer-exchange", "istio"])
mesh(8080, True, "Inbound_.8080_.v2_.Ratings.Bookinfo.svc.cluster.local.", ["istio-http/1.1"])
mesh(4143, True, "web.emojivoto.serviceaccount.identity.linkerd.cluster.local", ["transport.l5d.io/v1"])
mesh(4143, True, None, [])
mesh(20000, True, "v1.web.default.dc1.internal.11111111-2222-3333-4444-555555555555.consul", [])
mesh(20000, True, "web.default.part1.dc1.internal-v1.11111111-2222-3333-4444-555555555555.consul", [])
mesh(15008, True, None, ["h2"])
PY
rm -f corpus/.certs.hex corpus/.hellos.tsv

# rules: the rules examples in docs/ci.md and a few edge cases; policy: the policy dumps the
# tests use (single objects, multi-document YAML, JSON, List objects, invalid and broken ones).
awk '/^```yaml/{on=1; n++; next} /^```/{on=0} on{print > ("corpus/rules/docs-ci-" n ".yaml")}' \
  "$root/docs/ci.md"
printf 'rules:\n  - name: all\n    require: mtls\n' > corpus/rules/minimal.yaml
printf '{"rules":[{"name":"j","match":{"cidrs":["10.0.0.0/8","fd00::/8"],"sni":"*.svc"},"require":"tls"}]}' \
  > corpus/rules/json.json
for f in "$root"/tests/data/policy/*/*; do
  cp "$f" "corpus/policy/$(basename "$(dirname "$f")")-$(basename "$f")"
done
for t in capture_file decode reassembly tls_stream certificate plaintext mesh rules policy; do
  printf '%-14s %5s seeds\n' "$t" "$(find "corpus/$t" -type f | wc -l)"
done
