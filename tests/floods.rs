//! Floods written as pcap by the test itself, run through the real binary under
//! `/usr/bin/time` to read its peak memory: it must stay under the configured caps, and the
//! verdicts that can be made must still be made.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtlscope-floods-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A pcap writer for Ethernet/IPv4/TCP frames (checksums left zero: nothing checks them).
struct Pcap {
    w: BufWriter<std::fs::File>,
    ts: u32,
}

impl Pcap {
    fn create(path: &Path) -> Pcap {
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
        w.write_all(&[
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
        ])
        .unwrap();
        Pcap { w, ts: 1_700_000_000 }
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) {
        let ip_len = 20 + 20 + payload.len();
        let frame_len = 14 + ip_len;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&self.ts.to_le_bytes());
        h[8..12].copy_from_slice(&(frame_len as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame_len as u32).to_le_bytes());
        self.w.write_all(&h).unwrap();
        let mut f = [0u8; 54];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[38..42].copy_from_slice(&seq.to_be_bytes());
        f[42..46].copy_from_slice(&ack.to_be_bytes());
        f[46] = 0x50;
        f[47] = flags;
        f[48] = 0xff;
        self.w.write_all(&f).unwrap();
        self.w.write_all(payload).unwrap();
    }
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// Run `mtlscope analyze FILE -o jsonl ARGS` under /usr/bin/time; return the summary line and
/// the peak RSS in MiB. The connection lines go to a pipe and are counted, not kept.
fn run(file: &Path, args: &[&str]) -> (serde_json::Value, u64, u64) {
    let rss_file = tmp("rss.txt");
    let cmd = format!(
        "/usr/bin/time -f %M -o {} {} analyze -o jsonl {} {} | tee >(wc -l > {}.lines) | tail -n 1",
        rss_file.display(),
        env!("CARGO_BIN_EXE_mtlscope"),
        args.join(" "),
        file.display(),
        rss_file.display()
    );
    let o = Command::new("bash").arg("-c").arg(&cmd).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kib: u64 = std::fs::read_to_string(&rss_file).unwrap().trim().parse().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200)); // the `wc` in the tee
    let lines: u64 = std::fs::read_to_string(format!("{}.lines", rss_file.display()))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0);
    (summary, kib / 1024, lines)
}

fn have_time() -> bool {
    let ok = Path::new("/usr/bin/time").exists();
    if !ok {
        eprintln!("SKIP: /usr/bin/time is needed to measure peak memory (Debian package `time`)");
    }
    ok
}

#[test]
fn floods_stay_under_their_caps() {
    if !have_time() {
        return;
    }
    // 1,000,000 SYN-only connections from 1,000,000 distinct source endpoints.
    let syn = tmp("syn-flood.pcap");
    {
        let mut p = Pcap::create(&syn);
        for i in 0..1_000_000u32 {
            let src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            p.tcp(src, [10, 255, 0, 1], 1024 + (i % 60000) as u16, 443, i, 0, SYN, &[]);
        }
    }
    let (s, rss, _) = run(&syn, &["--max-flows", "100000"]);
    eprintln!(
        "SYN flood, 1M flows, --max-flows 100000: peak {rss} MiB, summary {}",
        s["summary"]
    );
    assert_eq!(s["summary"]["connections"], 1_000_000);
    assert_eq!(s["summary"]["verdicts"]["no-data"], 1_000_000);
    assert!(s["summary"]["evicted_flows"].as_u64().unwrap() >= 800_000);
    assert!(rss < 160, "peak RSS {rss} MiB with --max-flows 100000");

    // 100,000 connections whose client data arrives with a hole in front: each holds 2,400
    // out-of-order bytes (240 MB in all) that can never be delivered. A 32 MiB total cap.
    let holes = tmp("hole-flood.pcap");
    let payload = vec![0x17u8; 1200];
    {
        let mut p = Pcap::create(&holes);
        for i in 0..100_000u32 {
            let (c, s) = ([10, 1, (i >> 8) as u8, i as u8], [10, 2, 0, 1]);
            let sport = 20000 + (i % 40000) as u16;
            p.tcp(c, s, sport, 8443, 1000, 0, SYN, &[]);
            p.tcp(s, c, 8443, sport, 5000, 1001, SYN | ACK, &[]);
            for k in 0..2u32 {
                // The first 100 bytes after the SYN are never sent.
                p.tcp(c, s, sport, 8443, 1101 + k * 1200, 5001, ACK, &payload);
            }
        }
    }
    let (s, rss, lines) = run(&holes, &["--total-buffer", "33554432"]);
    eprintln!(
        "hole flood, 100k flows x 2400 buffered bytes, --total-buffer 32MiB: peak {rss} MiB, {lines} lines, summary {}",
        s["summary"]
    );
    assert_eq!(s["summary"]["connections"], 100_000);
    assert!(s["summary"]["buffer_limit_hits"].as_u64().unwrap() > 0);
    assert!(
        rss < 200,
        "peak RSS {rss} MiB with a 32 MiB total buffer cap (240 MB were offered)"
    );
    // Giving up the hole delivers what came after it: those connections are decided.
    assert_eq!(lines, 100_001);
}
