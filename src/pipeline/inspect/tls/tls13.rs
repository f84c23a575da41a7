//! What the encrypted records of a TLS 1.3 handshake look like: their lengths, filed by who
//! sent them and when. The verdict stage infers from these whether the client sent a
//! certificate (DESIGN.md: the client's first encrypted record after ServerHello), and reads
//! record padding or a stack's constant per-record overhead off the flights around it.

use super::rare_list::RareList;
use serde::Serialize;

/// How many record lengths of each TLS 1.3 flight are kept: a flight written one record per
/// message has at most 5 (EncryptedExtensions, CertificateRequest, Certificate,
/// CertificateVerify, Finished), plus early application data.
const MAX_FLIGHT: usize = 16;
/// TLS_AES_128_CCM_8_SHA256: the one TLS 1.3 suite whose AEAD tag is 8 bytes (the others
/// have 16).
const CCM_8: u16 = 0x1305;
/// Inner length of EndOfEarlyData (its 4-byte header, no body).
const END_OF_EARLY_DATA: u32 = 4;

/// What the encrypted TLS 1.3 flights looked like (lengths only).
///
/// An inner length is the record length less the AEAD tag and the content-type byte: the
/// handshake messages the record carries plus any padding (RFC 8446, 5.4).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Tls13Flights {
    /// Inner lengths of the server's encrypted records after ServerHello and before the
    /// client's first encrypted record (at most [`MAX_FLIGHT`]).
    pub server_flight: RareList<u32>,
    /// Length of the client's first encrypted record after ServerHello.
    pub client_first_record: Option<u32>,
    /// Inner lengths of the client's encrypted records from its first one until the server's
    /// reply (at most [`MAX_FLIGHT`]): its Certificate, CertificateVerify and Finished when
    /// written one per record, and any application data sent before the server answered.
    pub client_flight: RareList<u32>,
    /// Number of records the client sent whose inner length is that of EndOfEarlyData,
    /// skipped because early data was offered.
    pub end_of_early_data_skipped: u32,
    /// Inner length of the server's first encrypted record after the client's flight.
    pub server_reply: Option<u32>,
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
                    self.client_flight.push(inner);
                }
            }
            (false, Some(_)) => {
                // Only what the client sent before the server answered belongs to its flight.
                if self.server_reply.is_none() && self.client_flight.len() < MAX_FLIGHT {
                    self.client_flight.push(inner);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA384: u16 = 0x1302;

    /// OpenSSL `-record_padding 512`, client certificate sent (openssl-tls13-padding512-mtls):
    /// the records as they follow each other on the wire.
    #[test]
    fn flights_are_split_at_the_client_first_record_and_the_server_reply() {
        let mut t = Tls13Flights::default();
        for (server, len) in [
            (true, 528),
            (true, 528),
            (true, 2064),
            (true, 528),
            (true, 528),
            (false, 2064),
            (false, 528),
            (false, 528),
            (true, 1552),
            (false, 528),
            (true, 1552),
        ] {
            t.record(server, len, SHA384, false);
        }
        assert_eq!(t.server_flight.as_slice(), [511, 511, 2047, 511, 511]);
        assert_eq!(t.client_first_record, Some(2064));
        assert_eq!(t.client_flight.as_slice(), [2047, 511, 511]);
        assert_eq!(t.server_reply, Some(1535));
    }

    #[test]
    fn end_of_early_data_is_not_the_client_flight() {
        let mut t = Tls13Flights::default();
        t.record(true, 69, SHA384, true);
        t.record(false, 21, SHA384, true);
        t.record(false, 69, SHA384, true);
        assert_eq!(t.end_of_early_data_skipped, 1);
        assert_eq!(t.client_first_record, Some(69));
        assert_eq!(t.client_flight.as_slice(), [52]);
    }

    #[test]
    fn ccm_8_has_an_8_byte_tag() {
        let mut t = Tls13Flights::default();
        t.record(true, 45, CCM_8, false);
        assert_eq!(t.server_flight.as_slice(), [36]);
    }

    #[test]
    fn flights_are_bounded() {
        let mut t = Tls13Flights::default();
        for _ in 0..100 {
            t.record(true, 100, SHA384, false);
        }
        for _ in 0..100 {
            t.record(false, 100, SHA384, false);
        }
        assert_eq!(t.server_flight.len(), MAX_FLIGHT);
        assert_eq!(t.client_flight.len(), MAX_FLIGHT);
    }
}
