//! `--threads N` spreads connections over worker threads; the output must be exactly what one
//! thread writes: same verdicts, same ids, same order, same summary, byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;

fn mtlscope(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(args)
        .env("COLUMNS", "200")
        .output()
        .expect("running mtlscope");
    assert!(
        out.status.code().is_some_and(|c| c <= 2),
        "mtlscope {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = out.stdout;
    all.extend_from_slice(b"\n--- stderr ---\n");
    all.extend_from_slice(&out.stderr);
    all.extend_from_slice(format!("\n--- status {:?}", out.status.code()).as_bytes());
    all
}

/// The output with `--threads 1` and with 2 and 3 threads must be identical.
fn same_with_threads(files: &[String], extra: &[&str]) {
    for format in ["jsonl", "json", "table"] {
        let mut base: Vec<&str> = vec!["analyze", "--no-progress", "-o", format];
        base.extend_from_slice(extra);
        base.extend(files.iter().map(String::as_str));
        let one = mtlscope(&[&base[..], &["--threads", "1"]].concat());
        for n in ["2", "3"] {
            let many = mtlscope(&[&base[..], &["--threads", n]].concat());
            if one != many {
                let a = String::from_utf8_lossy(&one);
                let b = String::from_utf8_lossy(&many);
                let line = a.lines().zip(b.lines()).position(|(x, y)| x != y);
                panic!(
                    "-o {format} {extra:?} {files:?}: --threads {n} differs from --threads 1 at line {line:?}:\n{}\nvs\n{}",
                    line.and_then(|l| a.lines().nth(l)).unwrap_or("(end)"),
                    line.and_then(|l| b.lines().nth(l)).unwrap_or("(end)"),
                );
            }
        }
    }
}

fn captures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("captures/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(files.len() > 40, "captures/ has {} captures", files.len());
    files
}

#[test]
fn every_capture_gives_the_same_output_with_2_and_3_threads() {
    for f in captures() {
        same_with_threads(&[f], &[]);
    }
}

/// All captures in one run: the engine carries on from one file into the next, and resumed
/// sessions are linked to handshakes that may be on another worker.
#[test]
fn all_captures_in_one_run_give_the_same_output() {
    same_with_threads(&captures(), &[]);
}

/// A cut capture: the connections before the cut and the same error, with any thread count.
#[test]
fn a_truncated_capture_gives_the_same_output_and_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let bytes = std::fs::read(dir.join("nginx-curl-tls13.pcap")).expect("capture");
    let path = std::env::temp_dir().join(format!("mtlscope-threads-cut-{}.pcap", std::process::id()));
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).expect("writing the cut capture");
    same_with_threads(&[path.to_string_lossy().into_owned()], &[]);
    let _ = std::fs::remove_file(path);
}

#[test]
fn check_gives_the_same_result_with_threads() {
    let files = captures();
    let run = |n: &str| {
        let mut args = vec![
            "check",
            "--no-progress",
            "--require",
            "mtls",
            "-o",
            "json",
            "--threads",
            n,
        ];
        args.extend(files.iter().map(String::as_str));
        mtlscope(&args)
    };
    assert_eq!(String::from_utf8_lossy(&run("1")), String::from_utf8_lossy(&run("2")));
}

/// A synthetic capture of many interleaved connections between a few hosts: plaintext HTTP,
/// connections without data, resets, reused 4-tuples, and long pauses so that idle
/// connections are closed by sweeps in the middle of the capture (with `--idle-timeout 2`),
/// several of them at the same frame from different workers.
#[test]
fn many_interleaved_connections_give_the_same_output() {
    let path = synthetic_capture();
    let file = path.to_string_lossy().into_owned();
    same_with_threads(std::slice::from_ref(&file), &[]);
    same_with_threads(std::slice::from_ref(&file), &["--idle-timeout", "2"]);
    let _ = std::fs::remove_file(path);
}

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Conn {
    client: ([u8; 4], u16),
    server: ([u8; 4], u16),
    seq: [u32; 2],
    /// Packets still to send, as (from client?, flags, payload).
    script: Vec<(bool, u8, Vec<u8>)>,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

fn frame(c: &mut Conn, from_client: bool, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = if from_client {
        (c.client, c.server)
    } else {
        (c.server, c.client)
    };
    let d = usize::from(!from_client);
    let seq = c.seq[d];
    let ack = c.seq[1 - d];
    c.seq[d] = seq
        .wrapping_add(payload.len() as u32)
        .wrapping_add(u32::from(flags & (SYN | FIN) != 0));
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&src.1.to_be_bytes());
    tcp.extend_from_slice(&dst.1.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip[2..4].copy_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&src.0);
    ip.extend_from_slice(&dst.0);
    ip.extend_from_slice(&tcp);
    let mut eth = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    eth.extend_from_slice(&ip);
    eth
}

fn script(rng: &mut Rng, i: usize) -> Vec<(bool, u8, Vec<u8>)> {
    let mut s = vec![(true, SYN, vec![]), (false, SYN | ACK, vec![]), (true, ACK, vec![])];
    match rng.below(6) {
        // No data, closed politely.
        0 => {}
        // Reset by the server.
        1 => {
            s.push((true, PSH | ACK, b"GET /reset HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()));
            s.push((false, RST | ACK, vec![]));
            return s;
        }
        // Never closed: the idle timeout or the end of input closes it.
        2 => {
            s.push((
                true,
                PSH | ACK,
                format!("GET /open/{i} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
            ));
            return s;
        }
        _ => {
            s.push((
                true,
                PSH | ACK,
                format!("GET /item/{i} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
            ));
            s.push((false, ACK, vec![]));
            let body = "x".repeat(rng.below(3000) as usize);
            s.push((
                false,
                PSH | ACK,
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes(),
            ));
            s.push((true, ACK, vec![]));
        }
    }
    s.push((false, FIN | ACK, vec![]));
    s.push((true, FIN | ACK, vec![]));
    s.push((false, ACK, vec![]));
    s
}

fn synthetic_capture() -> PathBuf {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let clients: Vec<[u8; 4]> = (1..=5).map(|h| [10, 1, 0, h]).collect();
    let servers: Vec<([u8; 4], u16)> = vec![([10, 2, 0, 1], 80), ([10, 2, 0, 2], 8080), ([10, 2, 0, 3], 80)];
    let mut out = Vec::new();
    // pcap header, microseconds, Ethernet.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut ts_us: u64 = 1_700_000_000_000_000;
    let mut open: Vec<Conn> = Vec::new();
    let mut started = 0usize;
    let total = 1500;
    while started < total || !open.is_empty() {
        // Start connections in bursts, with pauses longer than the idle timeout now and then.
        if started < total && (open.len() < 40 || rng.below(4) == 0) {
            let client = clients[rng.below(clients.len() as u64) as usize];
            // A small port range, so 4-tuples are reused after their connection ended.
            let port = 40000 + rng.below(300) as u16;
            let server = servers[rng.below(servers.len() as u64) as usize];
            let busy = open.iter().any(|c| c.client == (client, port) && c.server == server);
            if !busy {
                open.push(Conn {
                    client: (client, port),
                    server,
                    seq: [rng.next() as u32, rng.next() as u32],
                    script: script(&mut rng, started),
                });
                started += 1;
            }
        }
        if open.is_empty() {
            continue;
        }
        let k = rng.below(open.len() as u64) as usize;
        let (from_client, flags, payload) = open[k].script.remove(0);
        let f = frame(&mut open[k], from_client, flags, &payload);
        if open[k].script.is_empty() {
            open.swap_remove(k);
        }
        ts_us += if rng.below(500) == 0 {
            3_000_000
        } else {
            rng.below(2000)
        };
        out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&f);
    }
    let path = std::env::temp_dir().join(format!("mtlscope-threads-{}.pcap", std::process::id()));
    std::fs::write(&path, out).expect("writing the synthetic capture");
    path
}
