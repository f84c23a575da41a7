//! Live capture: an AF_PACKET socket on an interface ([`afpacket`], driven by [`capture`]), also
//! inside another network namespace ([`netns`]), feeding the same pipeline as files do; the
//! `-w` file ([`savefile`]).

pub mod afpacket;
pub mod capture;
pub mod netns;
pub mod savefile;
