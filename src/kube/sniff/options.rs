//! What `sniff` is asked to do, from the command line: the options and the output format.

use crate::kube::client::KubeTarget;
use crate::pipeline::engine::Config;
use std::path::PathBuf;
use std::time::Duration;

/// How the results (or, with `--dry-run`, the helper pods) are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SniffFormat {
    Table,
    Json,
    Jsonl,
    /// Only with --dry-run: the helper pods as YAML.
    Yaml,
}

/// Everything `sniff` needs, from the command line.
#[derive(Debug, Clone)]
pub struct SniffOptions {
    pub kube: KubeTarget,
    pub namespace: Option<String>,
    pub target: Option<String>,
    pub selector: Option<String>,
    pub container: Option<String>,
    pub interface: String,
    pub filter: Option<String>,
    pub duration: Option<Duration>,
    /// Without --duration, the capture still ends after this (the helper's backstop).
    pub max_duration: Duration,
    pub count: Option<u64>,
    pub write: Option<PathBuf>,
    pub format: Option<SniffFormat>,
    pub dry_run: bool,
    pub image: String,
    pub pull_policy: String,
    pub privileged: bool,
    pub helper_namespace: Option<String>,
    pub running_timeout: Duration,
    /// Leave out the PeerAuthentication join (pod names are still shown).
    pub no_policy: bool,
    pub root_namespace: Option<String>,
    /// The agent's path in the helper image.
    pub agent: String,
    pub limits: Config,
}
