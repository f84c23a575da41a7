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
    /// `--image`: a prebuilt image with the agent inside, and no upload.
    pub image: Option<String>,
    /// `--helper-image`: the stock image the agent is uploaded into (without `--image`).
    pub helper_image: String,
    /// `--agent-binary` and where else to look for the agent to upload.
    pub agent_binary: Option<PathBuf>,
    /// The hidden `--allow-dynamic-agent` (see [`crate::kube::upload::AgentChoice`]).
    pub allow_dynamic_agent: bool,
    pub pull_policy: String,
    pub privileged: bool,
    pub helper_namespace: Option<String>,
    pub running_timeout: Duration,
    /// Leave out the PeerAuthentication join (pod names are still shown).
    pub no_policy: bool,
    pub root_namespace: Option<String>,
    /// The agent's command in an `--image` (the hidden `--agent-path`); an uploaded agent runs
    /// from [`crate::kube::helper_pod::UPLOADED_AGENT`].
    pub agent: String,
    pub limits: Config,
}
