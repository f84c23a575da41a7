//! Live capture: an AF_PACKET socket on an interface ([`afpacket`], driven by [`capture`]), also
//! inside another network namespace ([`netns`]), feeding the same pipeline as files do; the
//! `-w` file ([`savefile`]).

#[cfg(target_os = "linux")]
pub mod afpacket;
#[cfg(not(target_os = "linux"))]
#[path = "no_afpacket.rs"]
pub mod afpacket;
pub mod capture;
pub mod netns;
pub mod savefile;
