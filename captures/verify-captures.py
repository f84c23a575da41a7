#!/usr/bin/env python3
"""Cross-check every captures/*.expected.json against the wire, using tshark (never mtlscope).

    python3 captures/verify-captures.py [capture ...]

For each capture it rebuilds the TCP connections and TLS records with tshark and checks what the
wire can show: connection order and endpoints, TLS version, SNI, ALPN (TLS <= 1.2), resumption,
CertificateRequest and client Certificate (TLS <= 1.2), certificate identities (TLS <= 1.2),
cleartext alerts, plaintext HTTP, payload-less connections. For TLS 1.3 it measures the client's
first encrypted record after ServerHello (inner length = record length - 17) and checks that it is
consistent with the expected verdict: Finished (36 / 52) = not requested, 8 (or 8 + Finished when
the stack packs its flight into one record) = empty Certificate, larger = certificate sent. A
stack that adds a constant number of bytes to every record (Java) is calibrated on the server's
Finished, the last record of its flight. Captures with a "configured" list (README) get the checks
of their case: record padding, ClientHello answered by a non-TLS server, one direction only, an
oversized ClientHello, a snap length.

Key-logged TLS 1.3 captures (NAME.keylog beside the capture, or a pcapng whose Decryption
Secrets Block carries it): tshark decrypts the handshake with it (`-o tls.keylog_file:FILE`),
and the SHA-256 of the client certificate's DER it shows must be the expected
`client_cert_sha256`, the identities those of the decrypted certificates, the confidence
certain. Where tshark decrypts nothing with the key log (a wrong key), the length checks apply.

    python3 captures/verify-captures.py --lengths [capture ...]

prints instead the TLS 1.3 record-length table of captures/README.md (Markdown rows).
Exit status 1 when anything disagrees.
"""
import glob
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

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
        self.first_payload = {}   # (ip, port) -> bytes of that side's first segment with payload
        self.frames = []          # (from_ip_port, cap_len, len) of every frame
        self.records_frame = []   # frame number of each entry in records


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
        fr_ = L["frame"]
        c.frames.append((src, int(fr_["frame.cap_len"]), int(fr_["frame.len"])))
        if int(tcp.get("tcp.len", 0)) and src not in c.first_payload and "tcp.payload" in tcp:
            c.first_payload[src] = bytes.fromhex(tcp["tcp.payload"].replace(":", ""))
        for tls in as_list(L.get("tls")):
            if not isinstance(tls, dict):
                continue
            for rec in as_list(tls.get("tls.record")):
                if not isinstance(rec, dict):
                    continue
                ctype = rec.get("tls.record.content_type") or rec.get("tls.record.opaque_type")
                c.records.append((src, int(ctype) if ctype else None, int(rec.get("tls.record.length", 0)), rec))
                c.records_frame.append(int(fr_["frame.number"]))
        for http in as_list(L.get("http")):
            c.http_methods += find_all(http, "http.request.method")
    return [conns[k] for k in sorted(conns, key=lambda s: (conns[s].first_time, s))]


def handshakes(rec):
    return [h for h in as_list(rec.get("tls.handshake")) if isinstance(h, dict) and "tls.handshake.type" in h]


def tls13_flights(c, client, server):
    """TLS 1.3 records after ServerHello: the server's flight (its encrypted records before the
    client's first one) and the client's encrypted records, in order, as (length, record)."""
    seen_sh = False
    srv_flight, cli = [], []
    for src, ctype, length, rec in c.records:
        if src == server and any(h["tls.handshake.type"] == "2" for h in handshakes(rec)):
            seen_sh = True
            continue
        if not seen_sh or ctype != 23:
            continue
        if src == client:
            cli.append(length)
        elif not cli:
            srv_flight.append(length)
    return srv_flight, cli


def tls13_reading(suite, srv_flight, cli):
    """What the client's first encrypted record says, with the calibration of DESIGN.md.
    Returns (kind, verdict, requested, calibration pad) or kind '?' when nothing fits."""
    fin = 4 + (48 if suite == "0x1302" else 32)
    if not cli:
        return "no encrypted client record", None, None, 0
    first = cli[0] - 17
    # One record per message (3+ server records): the last is Finished; bytes beyond it are a
    # constant padding the stack adds to every record. A packed flight (one record) has none.
    pad = 0
    if len(srv_flight) >= 3 and 0 < srv_flight[-1] - 17 - fin < 256:
        pad = srv_flight[-1] - 17 - fin
    inner = first - pad
    if inner == fin:
        return "Finished (not requested)", "tls", False, pad
    if inner == 8 or inner == 8 + fin:
        return "empty Certificate" + (" + Finished, packed" if inner != 8 else ""), "tls", True, pad
    if inner > 100:
        return "Certificate", "mtls", True, pad
    return "?", None, None, pad


def check_conn(c, exp, cfg, ctx):
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
    if v == "plaintext" and exp["handshake"] == "failed":
        return check_hello_answered(c, exp, cfg, client, server)
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
    if cfg.get("snaplen"):
        return check_snapped(c, exp, cfg, client, server)
    if cfg.get("client_hello_length"):
        return check_oversized_hello(c, exp, cfg, client, server)

    # ---- TLS with a visible ClientHello ----
    one_way = cfg.get("captured") == "client-to-server"
    if c.syn_from is None:
        errs.append("no SYN")
    if one_way:
        if any(f[0] == server for f in c.frames):
            errs.append("server packets in a client-to-server capture")
        if client not in c.fin:
            errs.append("no FIN from the client")
    elif len(c.fin) != 2 and not c.rst:
        errs.append("connection not closed by both sides")
    hs_list = [(r[0], h, r) for r in c.records for h in handshakes(r[3])]
    ch = next((h for s, h, _ in hs_list if s == client and h["tls.handshake.type"] == "1"), None)
    sh = next((h for s, h, _ in hs_list if s == server and h["tls.handshake.type"] == "2"), None)
    if ch is None or (sh is None and not one_way):
        errs.append("ClientHello/ServerHello missing")
        return errs, notes
    if one_way:
        # the version the client offers: TLS 1.2 only when it sends no supported_versions
        offered = find_all(ch, "tls.handshake.extensions.supported_version")
        ver = "TLS 1.2" if not offered and ch.get("tls.handshake.version") == "0x0303" else "?"
        suite = None
    else:
        sv = first(sh, "tls.handshake.extensions.supported_version")
        ver = {"0x0304": "TLS 1.3", "0x0303": "TLS 1.2"}.get(sv or sh.get("tls.handshake.version"), "?")
        suite = sh.get("tls.handshake.ciphersuite")
    if ver != exp["tls_version"]:
        errs.append(f"version {ver} != {exp['tls_version']}")
    if cfg.get("tls_version") not in (None, ver):
        errs.append(f"configured version {cfg['tls_version']} but the wire shows {ver}")
    if cfg.get("cipher_suite") and suite and suite_name(suite) != cfg["cipher_suite"]:
        errs.append(f"suite {suite} ({suite_name(suite)}) != configured {cfg['cipher_suite']}")
    sni = first(ch, "tls.handshake.extensions_server_name")
    if sni != exp["sni"]:
        errs.append(f"sni {sni!r} != {exp['sni']!r}")
    alpn_srv = first(sh, "tls.handshake.extensions_alpn_str") if sh else None
    exp_alpn = exp["alpn"]
    if ver == "TLS 1.3":
        if exp_alpn is not None:
            errs.append("alpn must be null for TLS 1.3")
    elif alpn_srv != exp_alpn:
        errs.append(f"alpn {alpn_srv!r} != {exp_alpn!r}")
    sh_ext = [int(t) for t in find_all(sh, "tls.handshake.extension.type")] if sh else []
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
        sid_s = sh.get("tls.handshake.session_id") if sh else None
        resumed = sh is not None and "11" not in srv_types and sid_s is not None and sid_s == sid_c
        if resumed != exp["resumed"]:
            errs.append(f"resumed {resumed} != {exp['resumed']}")
        ccert = next((h for s, h, _ in hs_list if s == client and h["tls.handshake.type"] == "11"), None)
        sent = ccert is not None and int(ccert.get("tls.handshake.certificates_length", "0")) > 0
        # one direction only: a client Certificate is sent only when the server asked for one
        req = "13" in srv_types or (one_way and ccert is not None)
        if req != exp["client_cert_requested"]:
            errs.append(f"CertificateRequest {req} != {exp['client_cert_requested']}")
        cid = cert_identity(first(ccert, "tls.handshake.certificate")) if sent else None
        if resumed:
            # linked to the full handshake in the same capture that created the session ID
            cid = ctx.get(("session", sid_c))
            if v not in ("tls", "mtls") or v != ctx.get(("verdict", sid_c), v):
                errs.append("resumed connection: verdict differs from the session's full handshake")
        else:
            if (v == "mtls") != sent:
                errs.append(f"client certificate sent={sent} but verdict {v}")
            if ccert is not None and not sent:
                notes.append("empty client Certificate")
            if sid_s:
                ctx[("session", sid_s)] = cid
                ctx[("verdict", sid_s)] = v
        scert = next((h for s, h, _ in hs_list if s == server and h["tls.handshake.type"] == "11"), None)
        sid = cert_identity(first(scert, "tls.handshake.certificate")) if scert else None
        if cid != exp["client_identity"]:
            errs.append(f"client identity {cid!r} != {exp['client_identity']!r}")
        if sid != exp["server_identity"]:
            errs.append(f"server identity {sid!r} != {exp['server_identity']!r}")
        if cfg and cfg.get("client_cert_sent") != sent and not resumed:
            errs.append(f"configured client_cert_sent {cfg.get('client_cert_sent')} but the wire shows {sent}")
        if one_way:
            # the client's CCS, Finished and application data are there; the server's Finished
            # is not in the capture, so the handshake's end is not either
            cli_types_rec = [r[1] for r in c.records if r[0] == client]
            if 20 not in cli_types_rec or 23 not in cli_types_rec or alerts_clear:
                errs.append("the client's CCS / application data missing, or an alert")
            if exp["handshake"] != "incomplete":
                errs.append(f"handshake {exp['handshake']} != incomplete (one direction only)")
        else:
            ccs = {r[0] for r in c.records if r[1] == 20}
            failed = bool(alerts_clear) or len(ccs) < 2
            if failed != (exp["handshake"] == "failed"):
                errs.append(f"handshake failed={failed} != {exp['handshake']}")
        if alerts_clear:
            notes.append("clear alert " + ",".join(str(first(a, "tls.alert_message.desc")) for _, a in alerts_clear))
        notes.append(f"suite {suite} server hs {'/'.join(srv_types) or '(not captured)'} client hs {'/'.join(cli_types)}")
        want_conf = "inferred" if resumed else "certain"
    else:  # TLS 1.3
        resumed = 41 in sh_ext
        if resumed != exp["resumed"]:
            errs.append(f"resumed(psk in ServerHello) {resumed} != {exp['resumed']}")
        dec = c.decrypted or {}
        decrypted = 8 in dec.get(server, ([], []))[0]
        if decrypted:
            # tshark's own decryption with the key log: the certificates themselves.
            ctypes, ccerts = dec.get(client, ([], []))
            stypes, scerts = dec.get(server, ([], []))
            sha = hashlib.sha256(ccerts[0]).hexdigest() if ccerts else None
            if sha != exp.get("client_cert_sha256"):
                errs.append(f"decrypted client certificate SHA-256 {sha} != {exp.get('client_cert_sha256')}")
            cid = cert_identity(ccerts[0].hex()) if ccerts else None
            sid = cert_identity(scerts[0].hex()) if scerts else None
            if cid != exp["client_identity"]:
                errs.append(f"decrypted client identity {cid!r} != {exp['client_identity']!r}")
            if sid != exp["server_identity"]:
                errs.append(f"decrypted server identity {sid!r} != {exp['server_identity']!r}")
            req = 13 in stypes
            if req != exp["client_cert_requested"]:
                errs.append(f"decrypted CertificateRequest {req} != {exp['client_cert_requested']}")
            if not resumed and (v == "mtls") != bool(ccerts):
                errs.append(f"decrypted client certificate sent={bool(ccerts)} but verdict {v}")
            notes.append(f"decrypted with the key log: server {stypes}, client {ctypes}, client cert sha256 {sha}")
        elif exp["client_identity"] is not None or exp["server_identity"] is not None:
            errs.append("TLS 1.3 identities must be null")
        elif exp.get("client_cert_sha256"):
            errs.append("a client certificate SHA-256 is expected but tshark decrypts nothing")
        srv_flight, cli = tls13_flights(c, client, server)
        padding = cfg.get("record_padding")
        if padding:
            # RFC 8446 5.4: every record's inner plaintext (content + type + zeros) is a multiple
            # of the padding block, so lengths cannot tell a Finished from a Certificate
            padded = [n for n in srv_flight + cli[:1] if (n - 16) % padding == 0]
            notes.append(f"suite {suite} padded to {padding}: server flight {srv_flight}, client first {cli[:1]}")
            if len(padded) != len(srv_flight) + len(cli[:1]):
                errs.append(f"records not padded to multiples of {padding}")
            if decrypted:
                # the key log, not the lengths, says it
                want_conf = "certain"
            else:
                if v == "mtls" or exp["confidence"] != "uncertain":
                    errs.append("padded records: expected verdict must be uncertain, never mtls")
                want_conf = "uncertain"
        else:
            kind, inferred, requested, pad = tls13_reading(suite, srv_flight, cli)
            first_len = cli[0] - 17 if cli else None
            cal = f" - {pad} constant padding" if pad else ""
            notes.append(f"suite {suite} first client record inner length {first_len}{cal} = {kind}")
            if exp["resumed"]:
                inferred = v     # a resumed verdict comes from the original connection
                requested = False
            if inferred is None:
                errs.append("the client's first encrypted record fits no reading")
            elif inferred != v:
                errs.append(f"wire suggests {inferred} but expected {v}")
            if requested is not None and requested != exp["client_cert_requested"]:
                errs.append(f"wire suggests requested={requested} but expected {exp['client_cert_requested']}")
            if cfg and not resumed and cfg.get("client_cert_sent") != (inferred == "mtls"):
                errs.append(f"configured client_cert_sent {cfg.get('client_cert_sent')} but the wire suggests {inferred}")
            want_conf = "uncertain" if exp["resumed"] else "inferred"
            if decrypted and not exp["resumed"]:
                want_conf = "certain"
        srv_after = [r[2] for r in c.records if r[0] == server and r[1] == 23][len(srv_flight):]
        failed = bool(srv_after) and all(n == 19 for n in srv_after)
        if failed != (exp["handshake"] == "failed"):
            errs.append(f"handshake failed={failed} (server records after client flight {srv_after}) != {exp['handshake']}")
    if exp["confidence"] != want_conf:
        errs.append(f"confidence {exp['confidence']} looks wrong (expected {want_conf})")
    return errs, notes


def check_hello_answered(c, exp, cfg, client, server):
    """A ClientHello answered by a server that does not speak TLS: never tls (DESIGN.md)."""
    errs, notes = [], []
    hello = c.first_payload.get(client, b"")
    answer = c.first_payload.get(server, b"")
    if not (len(hello) >= 6 and hello[0] == 22 and hello[1] == 3 and hello[5] == 1):
        errs.append("the client's first bytes are not a TLS ClientHello")
    proto = exp["plaintext_protocol"]
    prefix = {"http": b"HTTP/", "ssh": b"SSH-"}.get(proto)
    if prefix is None or not answer.startswith(prefix):
        errs.append(f"server answered {answer[:16]!r}, not {proto}")
    if cfg.get("server_answer") and not answer.startswith(cfg["server_answer"].encode()):
        errs.append(f"server answer {answer[:32]!r} != configured {cfg['server_answer']!r}")
    if any(r[0] == server and r[1] in (20, 21, 22, 23) for r in c.records):
        errs.append("TLS records from the server")
    sni = sni_from_hello(hello)
    if sni != exp["sni"]:
        errs.append(f"sni {sni!r} != {exp['sni']!r}")
    if exp["confidence"] != "certain" or exp["tls_version"] is not None:
        errs.append("expected certain, tls_version null")
    line = answer.split(b"\r\n")[0][:40]
    notes.append(f"ClientHello ({len(hello)} bytes) answered with {line!r}")
    return errs, notes


def sni_from_hello(data):
    """server_name from a ClientHello in one TLS record (enough for these captures)."""
    try:
        p = 5 + 4 + 2 + 32
        p += 1 + data[p]
        p += 2 + int.from_bytes(data[p:p + 2], "big")
        p += 1 + data[p]
        end = p + 2 + int.from_bytes(data[p:p + 2], "big")
        p += 2
        while p + 4 <= end:
            t, n = int.from_bytes(data[p:p + 2], "big"), int.from_bytes(data[p + 2:p + 4], "big")
            if t == 0:
                q = p + 4 + 2
                return data[q + 3:q + 3 + int.from_bytes(data[q + 1:q + 3], "big")].decode()
            p += 4 + n
    except (IndexError, UnicodeDecodeError):
        pass
    return None


def check_oversized_hello(c, exp, cfg, client, server):
    """A ClientHello longer than mtlscope's handshake cap, rejected by the server before ServerHello."""
    errs, notes = [], []
    size = cfg["client_hello_length"]
    hello = c.first_payload.get(client, b"")
    if len(hello) < 9 or hello[0] != 22 or hello[5] != 1:
        errs.append("the client's first bytes are not a TLS handshake record with a ClientHello")
    else:
        declared = int.from_bytes(hello[6:9], "big")
        if declared != size:
            errs.append(f"ClientHello declares {declared} bytes, configured {size}")
        if declared <= 256 * 1024:
            errs.append("ClientHello not over the 256 KiB cap")
    records = -(-(size + 4) // 16384)
    cli_bytes = c.payload - len(c.first_payload.get(server, b""))
    if cli_bytes < size + 4 + 5 * records:
        errs.append(f"only {cli_bytes} client bytes on the wire, the ClientHello needs {size + 4 + 5 * records}")
    answer = c.first_payload.get(server, b"")
    if not (len(answer) == 7 and answer[0] == 21 and answer[5] == 2):
        errs.append(f"server answer {answer.hex()} is not one fatal alert")
    if exp["verdict"] != "tls" or exp["confidence"] != "certain" or exp["handshake"] != "failed":
        errs.append("expected tls, certain, handshake failed (failed before ServerHello)")
    if exp["sni"] is not None or sni_from_hello(hello) is not None:
        errs.append("this ClientHello carries no SNI")
    if exp["client_cert_requested"] is not None or exp["tls_version"] is not None:
        errs.append("no server flight: client_cert_requested and tls_version must be null")
    notes.append(f"ClientHello of {size} bytes in {records} records ({cli_bytes} client bytes), "
                 f"answered with alert {answer[5:7].hex() if len(answer) >= 7 else '?'}")
    return errs, notes


def check_snapped(c, exp, cfg, client, server):
    """Packets cut by the snap length: the handshake's bytes are missing (docs/verdicts.md)."""
    errs, notes = [], []
    snap = cfg["snaplen"]
    if any(cap > snap for _, cap, _ in c.frames):
        errs.append(f"a frame longer than the snap length {snap}")
    cut = sum(1 for _, cap, n in c.frames if n > cap)
    if not cut:
        errs.append("no frame was cut")
    if exp["verdict"] == "mtls" or exp["confidence"] != "uncertain" or exp["handshake"] != "incomplete":
        errs.append("expected never mtls, uncertain and incomplete when handshake bytes are missing")
    hello = c.first_payload.get(client, b"")
    if not (len(hello) >= 6 and hello[0] == 22 and hello[5] == 1):
        errs.append("the ClientHello's first bytes are not visible")
    notes.append(f"{cut} of {len(c.frames)} frames cut to {snap} bytes")
    return errs, notes


SUITES = {"0x1301": "TLS_AES_128_GCM_SHA256", "0x1302": "TLS_AES_256_GCM_SHA384",
          "0x1303": "TLS_CHACHA20_POLY1305_SHA256", "0xc02b": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
          "0xc02c": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "0xc02f": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
          "0xc030": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
          "0xcca8": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
          "0xcca9": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"}


def suite_name(code):
    return SUITES.get(code, code)


def decrypted_handshakes(cap, keylog, ports):
    """Per TCP stream, what tshark decrypts with the key log: {stream: {(ip, port): (types, certs)}},
    types the handshake message types (EncryptedExtensions, 8, shows that it decrypted) and certs
    the DER of each certificate that side sent, leaf first."""
    cmd = ["tshark", "-r", cap, "-Y", "tls.handshake.type", "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=;", "-e", "tcp.stream", "-e", "ip.src", "-e", "tcp.srcport",
           "-e", "tls.handshake.type", "-e", "tls.handshake.certificate"]
    if keylog:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    for p in sorted(ports):
        cmd += ["-d", f"tcp.port=={p},tls"]
    out = subprocess.run(cmd, capture_output=True, check=True, text=True).stdout
    seen = {}
    for line in out.splitlines():
        stream, ip, port, types, certs = (line.split("\t") + [""] * 5)[:5]
        side = seen.setdefault(int(stream), {}).setdefault((ip, int(port)), ([], []))
        side[0].extend(int(t) for t in types.split(";") if t)
        side[1].extend(bytes.fromhex(c.replace(":", "")) for c in certs.split(";") if c)
    return seen


def pcapng_without_secrets(cap):
    """The pcapng's bytes without its Decryption Secrets Blocks (type 0x0A), and whether it had any."""
    data = open(cap, "rb").read()
    out, i, had, order = bytearray(), 0, False, "<"
    while i + 12 <= len(data):
        if data[i:i + 4] == b"\x0a\x0d\x0d\x0a":  # Section Header: its byte-order magic
            order = "<" if data[i + 8:i + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        kind, length = struct.unpack(order + "II", data[i:i + 8])
        if kind == 0x0A:
            had = True
        else:
            out += data[i:i + length]
        i += length
    return bytes(out), had


def keylog_of(exp_path, exp):
    """The key log of a capture: NAME.keylog beside it, or True for a pcapng that carries its own."""
    cap = os.path.join(os.path.dirname(exp_path), exp["capture"])
    beside = os.path.splitext(cap)[0] + ".keylog"
    if os.path.exists(beside):
        return beside
    if cap.endswith(".pcapng") and pcapng_without_secrets(cap)[1]:
        return True
    return None


def load(exp_path):
    exp = json.load(open(exp_path))
    cap = os.path.join(os.path.dirname(exp_path), exp["capture"])
    ports = {int(c["server"].rsplit(":", 1)[1]) for c in exp["connections"]
             if c["verdict"] not in ("plaintext", "no-data")}
    keylog = keylog_of(exp_path, exp)
    if keylog is True:
        # The records as they are on the wire: without the secrets tshark would decrypt them.
        with tempfile.TemporaryDirectory() as d:
            bare = os.path.join(d, "bare.pcapng")
            open(bare, "wb").write(pcapng_without_secrets(cap)[0])
            conns = build_conns(load_frames(bare, ports))
    else:
        conns = build_conns(load_frames(cap, ports))
    for c in conns:
        c.decrypted = None
    if keylog:
        dec = decrypted_handshakes(cap, None if keylog is True else keylog, ports)
        for c in conns:
            c.decrypted = dec.get(c.stream, {})
    return exp, conns


def verify(exp_path):
    exp, conns = load(exp_path)
    cfgs = exp.get("configured") or [{}] * len(exp["connections"])
    errs = []
    if len(cfgs) != len(exp["connections"]):
        errs.append(f"{len(cfgs)} configured entries for {len(exp['connections'])} connections")
    if len(conns) != len(exp["connections"]):
        errs.append(f"{len(conns)} TCP connections on the wire, {len(exp['connections'])} expected")
    lines = []
    ctx = {}
    for i, (c, e, cfg) in enumerate(zip(conns, exp["connections"], cfgs)):
        ce, notes = check_conn(c, e, cfg, ctx)
        errs += [f"conn {i}: {x}" for x in ce]
        lines.append(f"    conn {i} {e['client']} -> {e['server']} {e['verdict']}/{e['tls_version']}: {'; '.join(notes)}")
    status = "OK  " if not errs else "FAIL"
    print(f"{status} {exp['capture']}")
    for l in lines:
        print(l)
    for x in errs:
        print(f"    !! {x}")
    return not errs


# Stacks of the captures made before "configured" existed, by name prefix (client, server).
# Versions as in captures/README.md.
OLD_STACKS = [("gnutls-", "GnuTLS 3.7.9 gnutls-cli", "OpenSSL 3.0.22 s_server"),
              ("nginx-curl-", "curl 7.88.1 (OpenSSL 3.0.22)", "nginx 1.22.1 (OpenSSL 3.0.22)"),
              ("istio-like-", "OpenSSL 3.0.22 s_client", "OpenSSL 3.0.22 s_server"),
              ("openssl-", "OpenSSL 3.0.22 s_client", "OpenSSL 3.0.22 s_server"),
              ("mixed-", "OpenSSL 3.0.22 s_client", "OpenSSL 3.0.22 s_server")]


def lengths(exp_path):
    """Markdown rows: the TLS 1.3 full handshakes' record lengths that the inference reads."""
    exp, conns = load(exp_path)
    cfgs = exp.get("configured") or [{}] * len(exp["connections"])
    rows = []
    for c, e, cfg in zip(conns, exp["connections"], cfgs):
        if e["tls_version"] != "TLS 1.3" or e["resumed"] or cfg.get("snaplen"):
            continue
        srv_ip, srv_port = e["server"].rsplit(":", 1)
        server = (srv_ip, int(srv_port))
        client = c.ends[0] if c.ends[1] == server else c.ends[1]
        sh = next((h for r in c.records if r[0] == server for h in handshakes(r[3]) if h["tls.handshake.type"] == "2"), None)
        if sh is None:
            continue
        suite = suite_name(sh.get("tls.handshake.ciphersuite"))
        srv_flight, cli = tls13_flights(c, client, server)
        if cfg:
            cstack, sstack = cfg["client_stack"], cfg["server_stack"]
            sent, req = cfg["client_cert_sent"], cfg["client_cert_requested"]
        else:
            cstack, sstack = next(((a, b) for p, a, b in OLD_STACKS if exp["capture"].startswith(p)), ("?", "?"))
            sent, req = e["verdict"] == "mtls", e["client_cert_requested"]
        mode = "sent" if sent else ("requested-none" if req else "none")
        # the client's flight: one record when the server packed its flight into one, else one
        # record per message (Certificate, CertificateVerify, Finished / Certificate, Finished / Finished)
        packed = len(srv_flight) == 1
        n = 1 if packed else {"sent": 3, "requested-none": 2, "none": 1}[mode]
        flight = cli[:n]
        first_txt = f"{cli[0]} ({cli[0] - 17})" if cli else "-"
        cert_txt = (f"{flight[0]} (packed flight)" if packed else str(flight[0])) if mode != "none" and flight else "-"
        pad = f", padding {cfg['record_padding']}" if cfg.get("record_padding") else ""
        stack = cstack if cstack == sstack else f"{cstack} -> {sstack}"
        rows.append(f"| `{exp['capture']}` | {stack}{pad} | {suite} | {mode} | {first_txt} | {cert_txt} | "
                    f"{', '.join(map(str, flight))} | {srv_flight[-1] if srv_flight else '-'} | "
                    f"{', '.join(map(str, srv_flight))} |")
    return rows


def main():
    args = sys.argv[1:]
    want_lengths = "--lengths" in args
    args = [a for a in args if a != "--lengths"]
    if args:
        paths = [a if a.endswith(".expected.json") else os.path.splitext(a)[0] + ".expected.json" for a in args]
    else:
        paths = sorted(glob.glob(os.path.join(HERE, "*.expected.json")))
    if want_lengths:
        print("| capture | stack (client -> server) | suite | client cert | client's first encrypted record: length (inner) | "
              "client Certificate record | client flight records | server's Finished record (last of its flight) | "
              "server flight records (after ServerHello) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for p in paths:
            if not os.path.basename(p).startswith("node-"):
                for r in lengths(p):
                    print(r)
        return
    ok = all([verify(p) for p in paths])
    print(f"{len(paths)} capture(s): {'all consistent' if ok else 'MISMATCHES'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
