//! A real capture cut at every byte offset (and gzip/pcapng captures at a dense sample): each cut
//! gives the packets before it plus at most one clean error naming the byte offset, never a
//! panic; through the runner, that error is the summary's one typed input error, with the same
//! message, file and offset. The corpus files run whole in tests/conformance.rs.

use mtlscope::pipeline::engine::{Config, Engine};
use mtlscope::pipeline::record::Collect;
use mtlscope::pipeline::source::CaptureReader;
use std::io::Cursor;
use std::path::Path;

/// Analyze `bytes` as a capture; returns (connections reported, error message if any).
fn analyze(bytes: &[u8]) -> (usize, Option<String>) {
    let mut engine = Engine::new(Config::default(), Collect::default());
    let mut error = None;
    match CaptureReader::from_read("cut", Box::new(Cursor::new(bytes.to_vec()))) {
        Ok(mut r) => loop {
            match r.next_packet() {
                Ok(Some(p)) => {
                    let _ = engine.packet(p.ts_ns, p.link, p.data);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        },
        Err(e) => error = Some(e.to_string()),
    }
    engine.finish();
    (engine.out.sorted().len(), error)
}

fn sweep(path: &Path, step: usize) -> usize {
    let data = std::fs::read(path).unwrap();
    let (full, err) = analyze(&data);
    assert!(err.is_none(), "{}: {err:?}", path.display());
    let mut cases = 0;
    let mut cut = 0;
    while cut < data.len() {
        let (n, err) = analyze(&data[..cut]);
        assert!(n <= full, "{} cut at {cut}: {n} connections > {full}", path.display());
        if let Some(e) = &err {
            assert!(
                e.starts_with("cut: "),
                "cut at {cut}: error does not name the input: {e}"
            );
            // A cut inside the file header is reported as "not a capture" (about offset 0).
            assert!(
                e.contains("byte") || e.contains("empty") || e.contains("not a pcap"),
                "cut at {cut}: no offset in: {e}"
            );
        }
        cases += 1;
        cut += step;
    }
    cases
}

#[test]
fn every_cut_is_clean() {
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut total = 0;
    // Every byte offset of a TLS 1.2 mTLS capture and a TLS 1.3 one.
    total += sweep(&captures.join("openssl-tls12-mtls-rsa.pcap"), 1);
    total += sweep(&captures.join("openssl-tls13-mtls-ecdsa-nanosec.pcap"), 1);
    // pcapng with two link types, every 3rd offset.
    total += sweep(&captures.join("mixed-linktypes.pcapng"), 3);
    // A gzip-compressed capture, if the corpus is present: every 7th offset.
    let gz =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/public/zeek__tls-fragmented-handshake.pcap.gz");
    if gz.exists() {
        total += sweep(&gz, 7);
    } else {
        eprintln!(
            "SKIP: {} not found; the gzip sweep needs shared/ beside the checkout",
            gz.display()
        );
    }
    eprintln!("truncation sweep: {total} cut points, no panic, every error names the byte offset");
    assert!(total > 5000);
}

/// Through the runner, as `analyze` reads files: a cut file gives the same message as the
/// reader, as a typed error in the summary that names the file and the byte offset.
#[test]
fn a_cut_file_is_one_input_error_with_its_offset() {
    use mtlscope::pipeline::runner::{analyze_files, InputError};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/openssl-tls12-mtls-rsa.pcap");
    let data = std::fs::read(&path).unwrap();
    let dir = std::env::temp_dir().join(format!("mtlscope-truncation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cut.pcap");
    let name = file.to_string_lossy().into_owned();
    let mut checked = 0;
    for cut in (40..data.len()).step_by(97) {
        std::fs::write(&file, &data[..cut]).unwrap();
        let mut reader = CaptureReader::open(&name).unwrap();
        let direct = loop {
            match reader.next_packet() {
                Ok(Some(_)) => {}
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let (_, summary) = analyze_files(std::slice::from_ref(&name), None, Config::default()).unwrap();
        let errors: Vec<&InputError> = summary.errors.iter().collect();
        match direct {
            None => assert!(errors.is_empty(), "cut at {cut}: {errors:?}"),
            Some(direct) => {
                assert_eq!(errors.len(), 1, "cut at {cut}: {errors:?}");
                let e = errors[0];
                assert!(matches!(e, InputError::Source(_)), "cut at {cut}: {e:?}");
                assert_eq!(e.to_string(), direct.to_string(), "cut at {cut}");
                assert_eq!(e.file(), Some(name.as_str()), "cut at {cut}");
                assert_eq!(e.offset(), direct.position().map(|p| p.offset), "cut at {cut}");
                assert!(e.offset().is_some(), "cut at {cut}: no offset in {e}");
                checked += 1;
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(checked > 10, "only {checked} cuts gave an error");
}
