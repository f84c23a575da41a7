//! What the encrypted records of a TLS 1.3 handshake look like: their lengths, filed by who
//! sent them and when. The verdict stage infers from these whether the client sent a
//! certificate (DESIGN.md: the client's first encrypted record after ServerHello).

use super::rare_list::RareList;
use serde::Serialize;

/// How many record lengths of the TLS 1.3 server flight are kept.
const MAX_FLIGHT: usize = 16;
/// TLS_AES_128_CCM_8_SHA256: the one TLS 1.3 suite whose AEAD tag is 8 bytes (the others
/// have 16).
const CCM_8: u16 = 0x1305;
/// Inner length of EndOfEarlyData (its 4-byte header, no body).
const END_OF_EARLY_DATA: u32 = 4;

/// What the encrypted TLS 1.3 flights looked like (lengths only).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Tls13Flights {
    /// Inner lengths (record length - tag - content type) of the server's encrypted records
    /// after ServerHello and before the client's first encrypted record.
    pub server_flight: RareList<u32>,
    /// Length of the client's first encrypted record after ServerHello.
    pub client_first_record: Option<u32>,
    /// Number of records the client sent whose inner length is that of EndOfEarlyData,
    /// skipped because early data was offered.
    pub end_of_early_data_skipped: u32,
    /// Inner length of the server's first encrypted record after the client's flight.
    pub server_reply: Option<u32>,
    /// The client sent a second encrypted record (its flight was accepted).
    pub client_continued: bool,
}

impl Tls13Flights {
    /// File one encrypted record of `len` bytes (after ServerHello, cipher suite `cipher`).
    /// `early_data`: the client offered 0-RTT, so its flight may start with EndOfEarlyData.
    pub fn record(&mut self, from_server: bool, len: u32, cipher: u16, early_data: bool) {
        let tag = if cipher == CCM_8 { 8 } else { 16 };
        let inner = len.saturating_sub(tag + 1);
        match (from_server, self.client_first_record) {
            (true, None) => {
                if self.server_flight.len() < MAX_FLIGHT {
                    self.server_flight.push(inner);
                }
            }
            (true, Some(_)) => {
                if self.server_reply.is_none() {
                    self.server_reply = Some(inner);
                }
            }
            (false, None) => {
                // EndOfEarlyData precedes the client's flight when 0-RTT was used.
                if early_data && inner == END_OF_EARLY_DATA {
                    self.end_of_early_data_skipped += 1;
                } else {
                    self.client_first_record = Some(len);
                }
            }
            (false, Some(_)) => self.client_continued = true,
        }
    }
}
