//! Entering another network namespace, for the calling thread only.
//!
//! `setns(2)` with `CLONE_NEWNET` moves just the calling thread, so the capture runs on a thread
//! of its own that enters the namespace before it opens the capture; the rest of the process
//! (output, signals) stays where it was. nix wraps the system call safely, so the crate stays
//! `#![forbid(unsafe_code)]`. Needs CAP_SYS_ADMIN (and, for another user's process, the right to
//! ptrace it, which root has).

#[cfg(target_os = "linux")]
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Where a network namespace is named from on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsTarget {
    /// A name under /var/run/netns (as `ip netns add` creates) or any path to a namespace file.
    Netns(String),
    /// The namespace a process lives in: /proc/PID/ns/net.
    Pid(u32),
}

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("no network namespace '{name}' (looked for {path}; `ip netns list` shows the named ones, or give a path such as /proc/PID/ns/net)")]
    NoSuchNetns { name: String, path: String },
    #[error("no process {pid} (/proc/{pid} does not exist)")]
    NoSuchPid { pid: u32 },
    // The causes are named `cause`, not `source`: the message already says them, and a
    // `source` would be printed a second time in the error chain.
    #[error("cannot open {path}: {cause}{hint}")]
    Open {
        path: String,
        cause: std::io::Error,
        hint: &'static str,
    },
    #[cfg(target_os = "linux")]
    #[error("cannot enter the network namespace {path}: {cause}{hint}")]
    Enter {
        path: String,
        cause: nix::Error,
        hint: &'static str,
    },
    /// The plugin for macOS and Windows carries this code but never runs the agent there.
    #[cfg(not(target_os = "linux"))]
    #[error("cannot enter the network namespace {path}: network namespaces exist only on Linux (the agent runs in the helper pod on the node)")]
    NotLinux { path: String },
}

const PRIVILEGE_HINT: &str =
    " (entering another network namespace needs CAP_SYS_ADMIN: run as root or in a privileged helper)";

const OPEN_HINT: &str = " (opening another process's namespace needs CAP_SYS_PTRACE when that process runs as \
                         another user or with capabilities this one lacks: run as root or in the privileged helper)";

impl NetnsTarget {
    /// The namespace file this target names.
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsTarget::Netns(n) if n.contains('/') => PathBuf::from(n),
            NetnsTarget::Netns(n) => Path::new("/var/run/netns").join(n),
            NetnsTarget::Pid(p) => PathBuf::from(format!("/proc/{p}/ns/net")),
        }
    }

    /// Check that the namespace exists, before any thread is started.
    pub fn open(&self) -> Result<File, NetnsError> {
        let path = self.path();
        let shown = path.display().to_string();
        match self {
            NetnsTarget::Pid(pid) if !Path::new(&format!("/proc/{pid}")).exists() => {
                return Err(NetnsError::NoSuchPid { pid: *pid })
            }
            // Not `exists()`: a namespace we may not look at is "permission denied", said below.
            NetnsTarget::Netns(name) if matches!(path.try_exists(), Ok(false)) => {
                return Err(NetnsError::NoSuchNetns {
                    name: name.clone(),
                    path: shown,
                })
            }
            _ => {}
        }
        File::open(&path).map_err(|cause| NetnsError::Open {
            hint: if cause.kind() == std::io::ErrorKind::PermissionDenied {
                match self {
                    NetnsTarget::Pid(_) => OPEN_HINT,
                    NetnsTarget::Netns(n) if n.starts_with("/proc/") => OPEN_HINT,
                    NetnsTarget::Netns(_) => PRIVILEGE_HINT,
                }
            } else {
                ""
            },
            path: shown,
            cause,
        })
    }
}

/// Move the calling thread into the namespace of `file` (from [`NetnsTarget::open`]).
#[cfg(target_os = "linux")]
pub fn enter(file: &File, path: &Path) -> Result<(), NetnsError> {
    setns(file, CloneFlags::CLONE_NEWNET).map_err(|cause| NetnsError::Enter {
        path: path.display().to_string(),
        hint: if cause == nix::Error::EPERM { PRIVILEGE_HINT } else { "" },
        cause,
    })
}

/// Network namespaces are Linux's: elsewhere (the plugin on macOS and Windows) entering one fails.
#[cfg(not(target_os = "linux"))]
pub fn enter(_file: &File, path: &Path) -> Result<(), NetnsError> {
    Err(NetnsError::NotLinux {
        path: path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            NetnsTarget::Netns("blue".into()).path(),
            PathBuf::from("/var/run/netns/blue")
        );
        assert_eq!(
            NetnsTarget::Netns("/proc/1/ns/net".into()).path(),
            PathBuf::from("/proc/1/ns/net")
        );
        assert_eq!(NetnsTarget::Pid(42).path(), PathBuf::from("/proc/42/ns/net"));
    }

    #[test]
    fn missing_targets_are_named() {
        let e = NetnsTarget::Netns("mtlscope-no-such-ns".into()).open().unwrap_err();
        assert!(
            e.to_string().contains("no network namespace 'mtlscope-no-such-ns'"),
            "{e}"
        );
        let e = NetnsTarget::Pid(u32::MAX).open().unwrap_err();
        assert!(e.to_string().starts_with(&format!("no process {}", u32::MAX)), "{e}");
    }
}
