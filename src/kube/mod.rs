//! Kubernetes: the API client ([`client`]), the privileged helper pod ([`helper_pod`]) and the
//! names that mark it ([`labels`]), the agent that runs in it and captures in a pod's network
//! namespace ([`agent`]), how the plugin delivers that agent into a stock helper image
//! ([`upload`], checking files with [`elf`]), the stream of records it sends back ([`wire`]),
//! the kubectl plugin that puts them together ([`sniff`]), the pod follower of `mtlscope
//! monitor --node` ([`follow`]) and the OpenReports writer of continuous mode ([`reports`]).

pub mod agent;
pub mod client;
pub mod elf;
pub mod follow;
pub mod helper_pod;
pub mod labels;
pub mod reports;
pub mod sniff;
pub mod upload;
pub mod wire;
