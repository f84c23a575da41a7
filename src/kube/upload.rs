//! Delivering the agent into a stock helper image: which file is the agent for a node's
//! architecture ([`find_agent`]), and streaming it over the exec channel into the helper's
//! `emptyDir` ([`upload`]), where the pod itself checks its length and SHA-256 before it may run.
//!
//! The upload is one exec per helper pod: `sh -c SCRIPT mtlscope-upload DIR N SHA256`, with the
//! agent's N bytes on stdin. `head -c N` stops after N bytes, so the upload never waits for the
//! end of stdin: the exec protocol v4 (API servers before 1.30) cannot close stdin alone, and
//! kube-rs closes the whole WebSocket when the stdin writer is dropped. The script then counts
//! what arrived (a cut stream gives `head` fewer bytes), checks the SHA-256 with `sha256sum -c`,
//! and only then makes the file executable and renames it to
//! [`crate::kube::helper_pod::UPLOADED_AGENT`], so a partial or
//! corrupted agent never runs. It needs `sh`, `head`, `wc`, `sha256sum`, `chmod` and `mv`:
//! busybox has them all.

use crate::kube::client::{self, KubeError};
use crate::kube::elf::{check_static, Arch};
use crate::kube::helper_pod::AGENT_DIR;
use crate::kube::labels::CONTAINER;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The agents shipped beside the plugin (in the release archive) are named this, followed by
/// the architecture: `mtlscope-agent-linux-amd64`, `mtlscope-agent-linux-arm64`. The release
/// pipeline builds them under these names.
pub const AGENT_FILE_PREFIX: &str = "mtlscope-agent-linux-";

/// The agent's file name beside the plugin for `arch`.
pub fn agent_file_name(arch: Arch) -> String {
    format!("{AGENT_FILE_PREFIX}{arch}")
}

/// Where an agent was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--agent-binary PATH`.
    Flag,
    /// The plugin itself, a static Linux binary.
    Plugin,
    /// [`agent_file_name`] beside the plugin.
    Beside,
}

/// An agent to upload: its bytes and their SHA-256 (hex).
#[derive(Debug, Clone)]
pub struct Agent {
    pub arch: Arch,
    pub path: PathBuf,
    pub origin: Origin,
    pub bytes: Arc<Vec<u8>>,
    pub sha256: String,
}

impl Agent {
    fn new(arch: Arch, path: &Path, origin: Origin, bytes: Vec<u8>) -> Agent {
        let sha256 = hex(&Sha256::digest(&bytes));
        Agent {
            arch,
            path: path.to_owned(),
            origin,
            bytes: Arc::new(bytes),
            sha256,
        }
    }

    /// `/path/to/file (linux/amd64, 14.2 MiB, sha256 3f1c...)`
    pub fn describe(&self) -> String {
        format!(
            "{} (linux/{}, {}, sha256 {})",
            self.path.display(),
            self.arch,
            mib(self.bytes.len()),
            self.sha256
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mib(n: usize) -> String {
    format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
}

/// How to find the agent for each architecture.
#[derive(Debug, Clone, Default)]
pub struct AgentChoice {
    /// `--agent-binary PATH`.
    pub explicit: Option<PathBuf>,
    /// The hidden `--allow-dynamic-agent`: accept a dynamically linked `--agent-binary` (the
    /// tests, whose helper "image" is this machine, until the static build is there; a helper
    /// image with the C library the agent was linked against).
    pub allow_dynamic: bool,
    /// The running plugin (`std::env::current_exe()`); `None` when it cannot be found.
    pub plugin: Option<PathBuf>,
}

impl AgentChoice {
    pub fn new(explicit: Option<PathBuf>, allow_dynamic: bool) -> AgentChoice {
        AgentChoice {
            explicit,
            allow_dynamic,
            plugin: std::env::current_exe().ok(),
        }
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: cannot read it: {e}", path.display()))
}

/// The agent for `arch`: `--agent-binary` when given; else the plugin itself when it is a
/// static Linux executable for `arch`; else [`agent_file_name`] beside the plugin; else an
/// error that names the three and `--image`. A file that is chosen but is not a static
/// executable for `arch` is refused with the reason.
pub fn find_agent(arch: Arch, choice: &AgentChoice) -> Result<Agent, String> {
    if let Some(path) = &choice.explicit {
        let bytes = read(path, "--agent-binary")?;
        return match check_static(&bytes, arch) {
            Ok(()) => Ok(Agent::new(arch, path, Origin::Flag, bytes)),
            Err(why) if choice.allow_dynamic && why.starts_with("dynamically linked") => {
                Ok(Agent::new(arch, path, Origin::Flag, bytes))
            }
            Err(why) => Err(format!(
                "--agent-binary {} cannot run in the helper on linux/{arch} nodes: it is {why}; pass the static agent \
                 for linux/{arch} ({} in the release archive), or --image IMAGE with a prebuilt mtlscope image",
                path.display(),
                agent_file_name(arch)
            )),
        };
    }
    let mut tried = vec!["--agent-binary PATH was not given".to_owned()];
    if let Some(plugin) = &choice.plugin {
        match read(plugin, "the plugin") {
            Ok(bytes) => match check_static(&bytes, arch) {
                Ok(()) => return Ok(Agent::new(arch, plugin, Origin::Plugin, bytes)),
                Err(why) => tried.push(format!("this plugin ({}) is {why}", plugin.display())),
            },
            Err(e) => tried.push(e),
        }
        let beside = plugin.with_file_name(agent_file_name(arch));
        if beside.exists() {
            let bytes = read(&beside, "the agent")?;
            return match check_static(&bytes, arch) {
                Ok(()) => Ok(Agent::new(arch, &beside, Origin::Beside, bytes)),
                Err(why) => Err(format!(
                    "the agent {} beside the plugin cannot run on linux/{arch} nodes: it is {why}; reinstall the \
                     plugin from its release archive, or pass --agent-binary PATH or --image IMAGE",
                    beside.display()
                )),
            };
        }
        tried.push(format!(
            "there is no {} beside it (in {})",
            agent_file_name(arch),
            plugin.parent().map(|p| p.display().to_string()).unwrap_or_default()
        ));
    } else {
        tried.push("the plugin's own path is unknown".to_owned());
    }
    Err(format!(
        "no agent for linux/{arch} nodes: {}; pass --agent-binary PATH (a static mtlscope agent for linux/{arch}, \
         {} in the release archive) or --image IMAGE (a prebuilt image with mtlscope inside)",
        tried.join("; "),
        agent_file_name(arch)
    ))
}

/// What runs in the helper, with the agent on stdin: see the module documentation. The
/// messages it writes on stderr start with `mtlscope-upload:`, and its exit codes say what
/// went wrong: 3, fewer bytes than announced; 4, another SHA-256.
const SCRIPT: &str = r#"set -u
part="$1/.agent.part"
head -c "$2" > "$part" || exit 5
got=$(wc -c < "$part")
got=$((got + 0))
if [ "$got" -ne "$2" ]; then
  echo "mtlscope-upload: cut: $got of $2 bytes arrived" >&2
  exit 3
fi
if ! echo "$3  $part" | sha256sum -c > /dev/null 2>&1; then
  sum=$(sha256sum < "$part")
  echo "mtlscope-upload: checksum: ${sum%% *}" >&2
  exit 4
fi
chmod 0555 "$part" && mv -f "$part" "$1/agent""#;

/// The upload's command, for `agent`.
pub fn upload_command(agent: &Agent) -> Vec<String> {
    vec![
        "sh".to_owned(),
        "-c".to_owned(),
        SCRIPT.to_owned(),
        "mtlscope-upload".to_owned(),
        AGENT_DIR.to_owned(),
        agent.bytes.len().to_string(),
        agent.sha256.clone(),
    ]
}

/// Why an upload failed, each with what to do.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "the helper image {image} has no shell: {message}; the agent is uploaded with sh, head, sha256sum, chmod \
         and mv, so pass --helper-image with an image that has them (busybox), or --image with a prebuilt mtlscope \
         image (which needs no upload)"
    )]
    NoShell { image: String, message: String },
    #[error(
        "the upload of the agent into helper pod {pod} was cut: {arrived} of {sent} bytes arrived (the exec stream \
         through the API server broke); run the capture again"
    )]
    Cut { pod: String, arrived: u64, sent: u64 },
    #[error(
        "the upload of the agent into helper pod {pod} was cut after {written} of {total} bytes were sent: {why}; \
         run the capture again"
    )]
    Lost {
        pod: String,
        written: u64,
        total: u64,
        why: String,
    },
    #[error(
        "checksum mismatch: the agent that arrived in helper pod {pod} has SHA-256 {got}, not {want} (that of {path}); \
         something on the way changed the bytes: run the capture again, or use --image"
    )]
    Checksum {
        pod: String,
        got: String,
        want: String,
        path: String,
    },
    #[error("starting the upload into helper pod {pod}: {source}")]
    Exec {
        pod: String,
        #[source]
        source: KubeError,
    },
    #[error(
        "the upload into helper pod {pod} failed: {message}{said}; the helper image {image} must have sh, head, wc, \
         sha256sum, chmod and mv (busybox does): pass --helper-image with such an image, or --image"
    )]
    Failed {
        pod: String,
        image: String,
        message: String,
        said: String,
    },
}

/// How kubelets and container runtimes say the command of an exec does not exist.
fn no_such_command(message: &str) -> bool {
    message.contains("executable file not found") || message.contains("no such file or directory")
}

/// No progress for this long (a write, or the end after the last write) ends the upload.
const STALL: Duration = Duration::from_secs(60);
/// Bytes per write on stdin.
const CHUNK: usize = 256 << 10;

/// Upload `agent` into helper pod `namespace/pod` (image `image`, for the errors); returns how
/// long it took.
pub async fn upload(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    image: &str,
    agent: &Agent,
) -> Result<Duration, UploadError> {
    let start = Instant::now();
    let label = format!("{namespace}/{pod}");
    let mut attached = match client::exec(client, namespace, pod, CONTAINER, upload_command(agent)).await {
        Ok(a) => a,
        Err(e) if no_such_command(&e.to_string()) => {
            return Err(UploadError::NoShell {
                image: image.to_owned(),
                message: e.to_string(),
            })
        }
        Err(source) => return Err(UploadError::Exec { pod: label, source }),
    };
    let mut status = attached.take_status();
    let stderr = attached.stderr().map(|mut s| {
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = s.read_to_string(&mut text).await;
            text
        })
    });
    let stdout = attached.stdout().map(|mut s| {
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        })
    });
    let mut stdin = attached.stdin();
    let total = agent.bytes.len() as u64;
    let mut written = 0u64;
    // Write the agent; the command may end first (no shell): then its status says why.
    let mut ended = None;
    let mut broke = None;
    if let Some(w) = stdin.as_mut() {
        for chunk in agent.bytes.chunks(CHUNK) {
            let step = async {
                w.write_all(chunk).await?;
                w.flush().await
            };
            let done = match status.as_mut() {
                Some(s) => tokio::select! {
                    r = tokio::time::timeout(STALL, step) => r,
                    st = s => { ended = Some(st); break; }
                },
                None => tokio::time::timeout(STALL, step).await,
            };
            match done {
                Ok(Ok(())) => written += chunk.len() as u64,
                // The stream broke: what the pod said first, if it arrived, says more.
                Ok(Err(e)) => {
                    broke = Some(e.to_string());
                    break;
                }
                Err(_) => {
                    return Err(lost(
                        &label,
                        written,
                        total,
                        &format!("no progress for {} s", STALL.as_secs()),
                    ))
                }
            }
        }
    }
    // Keep stdin open until the status has arrived: dropping it closes the stream.
    let wait = if broke.is_some() { Duration::from_secs(5) } else { STALL };
    let st = match (ended, status) {
        (Some(st), _) => st,
        (None, Some(s)) => match tokio::time::timeout(wait, s).await {
            Ok(st) => st,
            Err(_) if broke.is_some() => None,
            Err(_) => {
                return Err(lost(
                    &label,
                    written,
                    total,
                    &format!("no answer {} s after the last byte", STALL.as_secs()),
                ))
            }
        },
        (None, None) => None,
    };
    drop(stdin);
    let said = match stderr {
        Some(t) => tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => String::new(),
    };
    if let Some(t) = stdout {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), attached.join()).await;
    if let Some(st) = &st {
        if st.status.as_deref() == Some("Success") {
            return Ok(start.elapsed());
        }
        if let Some(message) = st.message.as_ref().filter(|m| no_such_command(m)) {
            return Err(UploadError::NoShell {
                image: image.to_owned(),
                message: message.clone(),
            });
        }
    }
    // The pod's own word on what arrived, even when the status was lost with the stream.
    for line in said.lines() {
        if let Some(rest) = line.strip_prefix("mtlscope-upload: cut: ") {
            let mut n = rest.split_whitespace().filter_map(|w| w.parse::<u64>().ok());
            if let (Some(arrived), Some(sent)) = (n.next(), n.next()) {
                return Err(UploadError::Cut {
                    pod: label,
                    arrived,
                    sent,
                });
            }
        }
        if let Some(got) = line.strip_prefix("mtlscope-upload: checksum: ") {
            return Err(UploadError::Checksum {
                pod: label,
                got: got.trim().to_owned(),
                want: agent.sha256.clone(),
                path: agent.path.display().to_string(),
            });
        }
    }
    let Some(st) = st else {
        let why = broke.unwrap_or_else(|| "the stream ended without the command's status".to_owned());
        return Err(lost(&label, written, total, &why));
    };
    let message = st.message.unwrap_or_else(|| "the command failed".to_owned());
    let said: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(UploadError::Failed {
        pod: label,
        image: image.to_owned(),
        message,
        said: if said.is_empty() {
            String::new()
        } else {
            format!(" (it said: {})", said[said.len().saturating_sub(3)..].join(" / "))
        },
    })
}

fn lost(pod: &str, written: u64, total: u64, why: &str) -> UploadError {
    UploadError::Lost {
        pod: pod.to_owned(),
        written,
        total,
        why: why.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(explicit: Option<&Path>, plugin: Option<&Path>) -> AgentChoice {
        AgentChoice {
            explicit: explicit.map(Path::to_owned),
            allow_dynamic: false,
            plugin: plugin.map(Path::to_owned),
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mtlscope-upload-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn no_agent_names_every_place_and_image() {
        let d = dir("none");
        let plugin = d.join("kubectl-mtlscope");
        std::fs::write(&plugin, b"#!/bin/sh\n").unwrap();
        let e = find_agent(Arch::Arm64, &choice(None, Some(&plugin))).unwrap_err();
        for part in [
            "no agent for linux/arm64 nodes",
            "--agent-binary PATH was not given",
            "is not an ELF executable",
            "there is no mtlscope-agent-linux-arm64 beside it",
            "--image IMAGE",
        ] {
            assert!(e.contains(part), "{part} missing from {e}");
        }
        // An agent beside the plugin that is not one is refused, with the reason.
        std::fs::write(d.join("mtlscope-agent-linux-arm64"), b"not elf").unwrap();
        let e = find_agent(Arch::Arm64, &choice(None, Some(&plugin))).unwrap_err();
        assert!(
            e.contains("mtlscope-agent-linux-arm64 beside the plugin cannot run"),
            "{e}"
        );
        let e = find_agent(Arch::Amd64, &choice(Some(&plugin), Some(&plugin))).unwrap_err();
        assert!(
            e.starts_with(&format!("--agent-binary {} cannot run", plugin.display())),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_plugin_itself_then_the_file_beside_it() {
        use object::elf::{EM_AARCH64, ET_EXEC, PT_LOAD};
        let d = dir("found");
        let plugin = d.join("kubectl-mtlscope");
        let arm64 = crate::kube::elf::test_elf(ET_EXEC, EM_AARCH64, &[PT_LOAD]);
        std::fs::write(&plugin, &arm64).unwrap();
        let a = find_agent(Arch::Arm64, &choice(None, Some(&plugin))).unwrap();
        assert_eq!((a.origin, a.path.as_path()), (Origin::Plugin, plugin.as_path()));
        assert_eq!(a.sha256, hex(&Sha256::digest(&arm64)));
        // A plugin for another machine: the agent beside it, named for the architecture.
        std::fs::write(&plugin, b"#!/bin/sh\n").unwrap();
        std::fs::write(d.join(agent_file_name(Arch::Arm64)), &arm64).unwrap();
        let a = find_agent(Arch::Arm64, &choice(None, Some(&plugin))).unwrap();
        assert_eq!(
            (a.origin, a.path.clone()),
            (Origin::Beside, d.join("mtlscope-agent-linux-arm64"))
        );
        // --agent-binary comes first.
        let flag = d.join("agent");
        std::fs::write(&flag, &arm64).unwrap();
        let a = find_agent(Arch::Arm64, &choice(Some(&flag), Some(&plugin))).unwrap();
        assert_eq!(a.origin, Origin::Flag);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_script_takes_its_length_first() {
        let d = dir("script");
        let agent = Agent::new(Arch::Amd64, Path::new("/x"), Origin::Flag, b"agent bytes".to_vec());
        let mut cmd = upload_command(&agent);
        assert_eq!(&cmd[..2], ["sh", "-c"]);
        assert_eq!(cmd[5], "11");
        cmd[4] = d.display().to_string();
        // The bytes and then more on stdin, never closed before the end: head stops at 11.
        let mut child = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"agent bytes").unwrap();
        assert!(child.wait().unwrap().success());
        drop(stdin);
        assert_eq!(std::fs::read(d.join("agent")).unwrap(), b"agent bytes");
        let _ = std::fs::remove_dir_all(&d);
    }
}
