//! `mtlscope agent`: what the privileged helper pod runs on a node. It finds the target
//! container's process by its container ID in `/proc/*/cgroup`, and the capture then enters that
//! process's network namespace (see [`crate::live::capture`]); verdicts stream out as JSON lines.
//!
//! Container IDs come from the pod status as `<runtime>://<64 hex>`. The cgroup path holds the
//! ID in a runtime-specific form, for example:
//! - cgroup v1, cgroupfs driver: `12:memory:/kubepods/burstable/pod<uid>/<id>`
//! - systemd driver (v1 or v2): `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`
//! - CRI-O: `.../crio-<id>.scope` (not `crio-conmon-<id>.scope`: the monitor process, which
//!   lives in the node's network namespace); Docker: `.../docker-<id>.scope` or `/docker/<id>`

use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("'{0}' is not a container ID (expected <runtime>://<hex id>, as in the pod's status.containerStatuses[].containerID, or the hex id alone)")]
    BadId(String),
    #[error("no process of container {id} under {proc_root} (is this the container's node, and does the helper run with hostPID: true?)")]
    NotFound { id: String, proc_root: String },
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
}

/// Set `stop` when standard input carries a line `stop` or ends. The plugin cannot close only
/// the stdin of an exec stream on older API servers (protocol v4 closes the whole stream), so
/// it writes `stop`; an ended stream (v5, or the plugin gone) stops the capture too.
pub fn stop_on_stdin(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) if l.trim() == "stop" => break,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
}

/// The hex ID of `containerd://abc...` (or of a bare ID), lowercased.
pub fn bare_id(id: &str) -> Result<String, AgentError> {
    let hex = id.rsplit("://").next().unwrap_or(id).trim().to_ascii_lowercase();
    if hex.len() < 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AgentError::BadId(id.to_string()));
    }
    Ok(hex)
}

/// Does one `/proc/PID/cgroup` file put the process in the container with this hex ID?
pub fn cgroup_matches(cgroup: &str, hex: &str) -> bool {
    cgroup.lines().any(|line| {
        // "hierarchy-ID:controllers:path"; the path is the part after the second colon.
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        path.split('/').any(|seg| {
            let seg = seg.strip_suffix(".scope").unwrap_or(seg);
            // CRI-O's (and podman's) container monitor, `crio-conmon-<id>.scope`, carries the
            // container's ID but runs in the node's network namespace, and starts first.
            if seg.contains("-conmon-") || seg.starts_with("conmon-") {
                return false;
            }
            let id = seg.rsplit('-').next().unwrap_or(seg);
            // A full ID, or a prefix of at least 12 characters as `docker ps` prints them.
            !id.is_empty() && (id == hex || (hex.len() < id.len() && id.starts_with(hex)))
        })
    })
}

/// The lowest PID whose cgroup is the container's (its init process, or the oldest one).
pub fn find_container_pid(proc_root: &Path, container_id: &str) -> Result<u32, AgentError> {
    let hex = bare_id(container_id)?;
    let entries = std::fs::read_dir(proc_root).map_err(|cause| AgentError::Read {
        path: proc_root.display().to_string(),
        cause,
    })?;
    let mut best: Option<u32> = None;
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // Processes come and go while we look: a vanished one is simply not it.
        let Ok(cgroup) = std::fs::read_to_string(e.path().join("cgroup")) else {
            continue;
        };
        if cgroup_matches(&cgroup, &hex) && best.is_none_or(|b| pid < b) {
            best = Some(pid);
        }
    }
    best.ok_or_else(|| AgentError::NotFound {
        id: container_id.to_string(),
        proc_root: proc_root.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c9e7a0b2d4c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f506";

    fn fake_proc(files: &[(u32, String)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mtlscope-proc-{}-{}", std::process::id(), files.len()));
        let _ = std::fs::remove_dir_all(&dir);
        for (pid, cgroup) in files {
            let p = dir.join(pid.to_string());
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("cgroup"), cgroup).unwrap();
        }
        std::fs::create_dir_all(dir.join("self")).unwrap();
        dir
    }

    #[test]
    fn runtime_prefixes_and_bad_ids() {
        assert_eq!(bare_id(&format!("containerd://{ID}")).unwrap(), ID);
        assert_eq!(bare_id(&format!("cri-o://{ID}")).unwrap(), ID);
        assert_eq!(bare_id(&format!("docker://{}", ID.to_uppercase())).unwrap(), ID);
        assert!(bare_id("containerd://").is_err());
        assert!(bare_id("containerd://not-hex-at-all!").is_err());
    }

    #[test]
    fn cgroup_formats() {
        let v1_cgroupfs =
            format!("12:memory:/kubepods/burstable/pod1234-5678/{ID}\n11:cpu:/kubepods/burstable/pod1234-5678/{ID}\n");
        let v2_containerd = format!("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12_34.slice/cri-containerd-{ID}.scope\n");
        let crio =
            format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podab.slice/crio-{ID}.scope\n");
        let docker_systemd = format!("1:name=systemd:/system.slice/docker-{ID}.scope\n");
        let docker_v1 = format!("4:pids:/docker/{ID}\n");
        // Read from inside the helper pod, which has a cgroup namespace of its own (cgroup v2
        // with containerd/CRI-O): another pod's path is relative to the helper's cgroup.
        let v2_from_a_cgroupns = format!("0::/../../kubepods-besteffort-pod9a_7b.slice/cri-containerd-{ID}.scope\n");
        for c in [
            &v1_cgroupfs,
            &v2_containerd,
            &crio,
            &docker_systemd,
            &docker_v1,
            &v2_from_a_cgroupns,
        ] {
            assert!(cgroup_matches(c, ID), "{c}");
            assert!(cgroup_matches(c, &ID[..12]), "short id in {c}");
        }
        let other = "0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.scope\n";
        assert!(!cgroup_matches(other, ID));
        assert!(!cgroup_matches("0::/user.slice/session-1.scope\n", ID));
    }

    #[test]
    fn lowest_matching_pid_wins() {
        let dir = fake_proc(&[
            (1, "0::/init.scope\n".into()),
            (4242, format!("0::/kubepods.slice/cri-containerd-{ID}.scope\n")),
            (517, format!("0::/kubepods.slice/cri-containerd-{ID}.scope\n")),
            (900, "0::/kubepods.slice/cri-containerd-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.scope\n".into()),
        ]);
        assert_eq!(find_container_pid(&dir, &format!("containerd://{ID}")).unwrap(), 517);
        // CRI-O: conmon starts before the container, with the container's ID in its cgroup.
        let crio = fake_proc(&[
            (
                300,
                format!("0::/kubepods.slice/kubepods-besteffort.slice/crio-conmon-{ID}.scope\n"),
            ),
            (
                310,
                format!("0::/kubepods.slice/kubepods-besteffort.slice/crio-{ID}.scope\n"),
            ),
            (320, "0::/system.slice/crio.service\n".into()),
            (330, "0::/system.slice/crio.service\n".into()),
            (340, "0::/user.slice\n".into()),
        ]);
        assert_eq!(find_container_pid(&crio, &format!("cri-o://{ID}")).unwrap(), 310);
        let e = find_container_pid(&dir, "containerd://cccccccccccccccccccccccc").unwrap_err();
        assert!(e.to_string().contains("hostPID"), "{e}");
    }

    #[test]
    fn finds_this_process_in_the_real_proc() {
        // Our own cgroup path's last component names us; that is what a container ID matches.
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        if let Some(last) = cgroup.lines().next().and_then(|l| l.rsplit('/').next()) {
            let id = last
                .strip_suffix(".scope")
                .unwrap_or(last)
                .rsplit('-')
                .next()
                .unwrap_or("");
            if id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                let pid = find_container_pid(Path::new("/proc"), id).unwrap();
                assert!(pid <= std::process::id());
            }
        }
    }
}
