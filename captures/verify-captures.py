#!/usr/bin/env python3
"""Cross-check every captures/*.expected.json against the wire, using tshark (never mtlscope).

    python3 captures/verify-captures.py [capture ...]

For each capture it rebuilds the TCP connections and TLS records with tshark and checks what the
wire can show: connection order and endpoints, TLS version, SNI, ALPN (TLS <= 1.2), resumption,
CertificateRequest and client Certificate (TLS <= 1.2), certificate identities (TLS <= 1.2),
cleartext alerts, plaintext HTTP, payload-less connections. For TLS 1.3 it measures the client's
first encrypted record after ServerHello (inner length = record length - 17) and checks that it is
consistent with the expected verdict: Finished (36 / 52) = not requested, 8 = empty Certificate,
larger = certificate sent. Exit status 1 when anything disagrees.
"""
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def as_list(x):
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def find_all(obj, key):
    """All values of `key` anywhere below obj (tshark JSON nests extensions under display keys)."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                out.extend(as_list(v))
            else:
                out.extend(find_all(v, key))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(find_all(v, key))
    return out


def first(obj, key):
    v = find_all(obj, key)
    return v[0] if v else None


def cert_identity(hexcolon):
    der = bytes.fromhex(hexcolon.replace(":", ""))
    txt = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-ext", "subjectAltName",
                          "-nameopt", "RFC2253"], input=der, capture_output=True, check=True).stdout.decode()
    uris, dns, cn = [], [], None
    for line in txt.splitlines():
        line = line.strip()
        if line.startswith("subject="):
            for rdn in line[len("subject="):].split(","):
                if rdn.startswith("CN="):
                    cn = rdn[3:]
        for item in line.split(","):
            item = item.strip()
            if item.startswith("URI:"):
                uris.append(item[4:])
            elif item.startswith("DNS:"):
                dns.append(item[4:])
    spiffe = [u for u in uris if u.startswith("spiffe://")]
    return (spiffe or uris or dns or [cn])[0]


def load_frames(path, tls_ports):
    cmd = ["tshark", "-r", path, "-T", "json", "--no-duplicate-keys", "-J", "frame ip tcp tls http", "-d", "udp.port==8472,vxlan"]
    for p in sorted(tls_ports):
        cmd += ["-d", f"tcp.port=={p},tls"]
    res = subprocess.run(cmd, capture_output=True, check=True)
    return json.loads(res.stdout)


class Conn:
    def __init__(self, stream):
        self.stream = stream
        self.first_time = None
        self.syn_from = None
        self.ends = None          # ((ip, port), (ip, port)) as first seen
        self.fin = set()
        self.rst = False
        self.payload = 0
        self.records = []         # (from_ip_port, content_type or opaque, length, record dict)
        self.http_methods = []


def build_conns(frames):
    conns = {}
    for fr in frames:
        L = fr["_source"]["layers"]
        tcp = L.get("tcp")
        if not tcp:
            continue
        ip = L.get("ip")
        if isinstance(ip, list):
            ip = ip[-1]  # the innermost IP header: node captures carry pod traffic in tunnels
        src = (ip["ip.src"], int(tcp["tcp.srcport"]))
        dst = (ip["ip.dst"], int(tcp["tcp.dstport"]))
        st = int(tcp["tcp.stream"])
        c = conns.setdefault(st, Conn(st))
        if c.first_time is None:
            c.first_time = float(L["frame"]["frame.time_epoch"])
            c.ends = (src, dst)
        flags = tcp.get("tcp.flags_tree", {})
        if flags.get("tcp.flags.syn") == "1" and flags.get("tcp.flags.ack") == "0":
            c.syn_from = src
        if flags.get("tcp.flags.fin") == "1":
            c.fin.add(src)
        if flags.get("tcp.flags.reset") == "1":
            c.rst = True
        c.payload += int(tcp.get("tcp.len", 0))
        for tls in as_list(L.get("tls")):
            if not isinstance(tls, dict):
                continue
            for rec in as_list(tls.get("tls.record")):
                if not isinstance(rec, dict):
                    continue
                ctype = rec.get("tls.record.content_type") or rec.get("tls.record.opaque_type")
                c.records.append((src, int(ctype) if ctype else None, int(rec.get("tls.record.length", 0)), rec))
        for http in as_list(L.get("http")):
            c.http_methods += find_all(http, "http.request.method")
    return [conns[k] for k in sorted(conns, key=lambda s: (conns[s].first_time, s))]


def handshakes(rec):
    return [h for h in as_list(rec.get("tls.handshake")) if isinstance(h, dict) and "tls.handshake.type" in h]


def check_conn(c, exp, idx):
    errs, notes = [], []
    srv_ip, srv_port = exp["server"].rsplit(":", 1)
    server = (srv_ip, int(srv_port))
    if server not in c.ends:
        errs.append(f"server {exp['server']} not an endpoint of stream {c.stream} {c.ends}")
        return errs, notes
    client = c.ends[0] if c.ends[1] == server else c.ends[1]
    if client[0] != exp["client"]:
        errs.append(f"client {client[0]} != {exp['client']}")
    if c.syn_from is not None and c.syn_from != client:
        errs.append("SYN not sent by the expected client")
    v = exp["verdict"]

    if v == "no-data":
        if c.payload:
            errs.append(f"{c.payload} payload bytes in a no-data connection")
        notes.append("RST" if c.rst else "no payload")
        return errs, notes
    if v == "plaintext":
        if c.records:
            errs.append("TLS records in a plaintext connection")
        if exp["plaintext_protocol"] == "http" and not c.http_methods:
            errs.append("no HTTP request seen")
        notes.append(f"HTTP {','.join(c.http_methods)}")
        return errs, notes
    if v == "encrypted":
        if c.syn_from is not None:
            errs.append("SYN present in a mid-stream capture")
        if any(r[1] == 22 for r in c.records):
            errs.append("handshake record present in a mid-stream capture")
        dirs = {r[0] for r in c.records if r[1] == 23}
        if len(dirs) != 2:
            errs.append("application data not seen in both directions")
        notes.append(f"{sum(1 for r in c.records if r[1] == 23)} app-data records, no handshake")
        return errs, notes

    # ---- TLS with a visible ClientHello ----
    if c.syn_from is None:
        errs.append("no SYN")
    if len(c.fin) != 2 and not c.rst:
        errs.append("connection not closed by both sides")
    hs_list = [(r[0], h, r) for r in c.records for h in handshakes(r[3])]
    ch = next((h for s, h, _ in hs_list if s == client and h["tls.handshake.type"] == "1"), None)
    sh = next((h for s, h, _ in hs_list if s == server and h["tls.handshake.type"] == "2"), None)
    if ch is None or sh is None:
        errs.append("ClientHello/ServerHello missing")
        return errs, notes
    sv = first(sh, "tls.handshake.extensions.supported_version")
    ver = {"0x0304": "TLS 1.3", "0x0303": "TLS 1.2"}.get(sv or sh.get("tls.handshake.version"), "?")
    if ver != exp["tls_version"]:
        errs.append(f"version {ver} != {exp['tls_version']}")
    suite = sh.get("tls.handshake.ciphersuite")
    sni = first(ch, "tls.handshake.extensions_server_name")
    if sni != exp["sni"]:
        errs.append(f"sni {sni!r} != {exp['sni']!r}")
    alpn_srv = first(sh, "tls.handshake.extensions_alpn_str")
    exp_alpn = exp["alpn"]
    if ver == "TLS 1.3":
        if exp_alpn is not None:
            errs.append("alpn must be null for TLS 1.3")
    elif alpn_srv != exp_alpn:
        errs.append(f"alpn {alpn_srv!r} != {exp_alpn!r}")
    sh_ext = [int(t) for t in find_all(sh, "tls.handshake.extension.type")]
    srv_types = [h["tls.handshake.type"] for s, h, _ in hs_list if s == server]
    cli_types = [h["tls.handshake.type"] for s, h, _ in hs_list if s == client]
    # alerts sent before that side's ChangeCipherSpec are in clear (TLS <= 1.2)
    alerts_clear, ccs_seen = [], set()
    for src, ctype, _, rec in c.records:
        if ctype == 20:
            ccs_seen.add(src)
        elif ctype == 21 and src not in ccs_seen:
            alerts_clear.append((src, rec))

    if ver == "TLS 1.2":
        sid_c = ch.get("tls.handshake.session_id")
        sid_s = sh.get("tls.handshake.session_id")
        resumed = "11" not in srv_types and sid_s is not None and sid_s == sid_c
        if resumed != exp["resumed"]:
            errs.append(f"resumed {resumed} != {exp['resumed']}")
        req = "13" in srv_types
        if req != exp["client_cert_requested"]:
            errs.append(f"CertificateRequest {req} != {exp['client_cert_requested']}")
        ccert = next((h for s, h, _ in hs_list if s == client and h["tls.handshake.type"] == "11"), None)
        sent = ccert is not None and int(ccert.get("tls.handshake.certificates_length", "0")) > 0
        if resumed:
            if v not in ("tls", "mtls") or exp["client_identity"] is not None:
                errs.append("resumed connection: identity must be null")
        else:
            if (v == "mtls") != sent:
                errs.append(f"client certificate sent={sent} but verdict {v}")
            if ccert is not None and not sent:
                notes.append("empty client Certificate")
        cid = cert_identity(first(ccert, "tls.handshake.certificate")) if sent else None
        scert = next((h for s, h, _ in hs_list if s == server and h["tls.handshake.type"] == "11"), None)
        sid = cert_identity(first(scert, "tls.handshake.certificate")) if scert else None
        if cid != exp["client_identity"]:
            errs.append(f"client identity {cid!r} != {exp['client_identity']!r}")
        if sid != exp["server_identity"]:
            errs.append(f"server identity {sid!r} != {exp['server_identity']!r}")
        ccs = {r[0] for r in c.records if r[1] == 20}
        failed = bool(alerts_clear) or len(ccs) < 2
        if failed != (exp["handshake"] == "failed"):
            errs.append(f"handshake failed={failed} != {exp['handshake']}")
        if alerts_clear:
            notes.append("clear alert " + ",".join(str(first(a, "tls.alert_message.desc")) for _, a in alerts_clear))
        notes.append(f"suite {suite} server hs {'/'.join(srv_types)} client hs {'/'.join(cli_types)}")
    else:  # TLS 1.3
        resumed = 41 in sh_ext
        if resumed != exp["resumed"]:
            errs.append(f"resumed(psk in ServerHello) {resumed} != {exp['resumed']}")
        if exp["client_identity"] is not None or exp["server_identity"] is not None:
            errs.append("TLS 1.3 identities must be null")
        # client's first encrypted record after ServerHello (CCS skipped)
        seen_sh = False
        first_len = None
        srv_after = []
        for src, ctype, length, rec in c.records:
            if src == server and any(h["tls.handshake.type"] == "2" for h in handshakes(rec)):
                seen_sh = True
                continue
            if seen_sh and src == client and ctype == 23 and first_len is None:
                first_len = length - 17
            elif first_len is not None and src == server and ctype == 23:
                srv_after.append(length)
        hash_len = 48 if suite == "0x1302" else 32
        fin = 4 + hash_len
        if first_len is None:
            errs.append("no encrypted client record")
        else:
            if first_len == fin:
                kind = "Finished (not requested)"
                inferred = ("tls", False)
            elif first_len == 8:
                kind = "empty Certificate"
                inferred = ("tls", True)
            elif first_len > 100:
                kind = "Certificate"
                inferred = ("mtls", True)
            else:
                kind = "?"
                inferred = (None, None)
            notes.append(f"suite {suite} first client record inner length {first_len} = {kind}")
            if exp["resumed"]:
                inferred = (v, inferred[1])     # a resumed verdict comes from the original connection
            if inferred[0] != v:
                errs.append(f"wire suggests {inferred[0]} but expected {v}")
            if inferred[1] != exp["client_cert_requested"]:
                errs.append(f"wire suggests requested={inferred[1]} but expected {exp['client_cert_requested']}")
        failed = bool(srv_after) and all(n == 19 for n in srv_after)
        if failed != (exp["handshake"] == "failed"):
            errs.append(f"handshake failed={failed} (server records after client flight {srv_after}) != {exp['handshake']}")
    if exp["confidence"] != ("certain" if ver == "TLS 1.2" and not exp["resumed"] else "inferred"):
        errs.append(f"confidence {exp['confidence']} looks wrong")
    return errs, notes


def verify(exp_path):
    exp = json.load(open(exp_path))
    cap = os.path.join(os.path.dirname(exp_path), exp["capture"])
    ports = {int(c["server"].rsplit(":", 1)[1]) for c in exp["connections"]
             if c["verdict"] not in ("plaintext", "no-data")}
    conns = build_conns(load_frames(cap, ports))
    errs = []
    if len(conns) != len(exp["connections"]):
        errs.append(f"{len(conns)} TCP connections on the wire, {len(exp['connections'])} expected")
    lines = []
    for i, (c, e) in enumerate(zip(conns, exp["connections"])):
        ce, notes = check_conn(c, e, i)
        errs += [f"conn {i}: {x}" for x in ce]
        lines.append(f"    conn {i} {e['client']} -> {e['server']} {e['verdict']}/{e['tls_version']}: {'; '.join(notes)}")
    status = "OK  " if not errs else "FAIL"
    print(f"{status} {exp['capture']}")
    for l in lines:
        print(l)
    for x in errs:
        print(f"    !! {x}")
    return not errs


def main():
    args = sys.argv[1:]
    if args:
        paths = [a if a.endswith(".expected.json") else os.path.splitext(a)[0] + ".expected.json" for a in args]
    else:
        paths = sorted(glob.glob(os.path.join(HERE, "*.expected.json")))
    ok = all([verify(p) for p in paths])
    print(f"{len(paths)} capture(s): {'all consistent' if ok else 'MISMATCHES'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
