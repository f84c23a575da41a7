//! The PeerAuthentication / pods / services / ConfigMap loader (`--policy-from`, `policy
//! explain --from`): YAML, multi-document YAML, JSON and `List` objects. Layout: the whole input
//! is one file's text. Whatever loads is then queried as `policy explain` would: the effective
//! mode of every pod on port 0 and on each of its declared ports, and for each Service port.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtlscope::policy::{explain_json, Cluster};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut cluster = Cluster::new();
    if cluster.add_text(Path::new("fuzz.yaml"), &text).is_err() {
        return;
    }
    let _ = cluster.warnings();
    let _ = cluster.summary();
    for pod in cluster.pods() {
        let mut ports: Vec<u16> = vec![0, 80, 9080];
        ports.extend(pod.ports.iter().map(|p| p.port));
        for port in ports {
            let d = cluster.effective(pod, port);
            let _ = explain_json(pod, port, &d);
        }
        for svc in cluster.services() {
            for sp in &svc.ports {
                let _ = cluster.effective_for_service_port(pod, sp.port);
            }
        }
    }
});
