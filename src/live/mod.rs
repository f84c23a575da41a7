//! Live capture: libpcap on an interface ([`capture`]), also inside another network namespace
//! ([`netns`]), feeding the same pipeline as files do.

pub mod capture;
pub mod netns;
