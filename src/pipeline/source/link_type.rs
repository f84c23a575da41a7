//! The link type of a captured packet: libpcap's `LINKTYPE_` number, and the name a person
//! knows it by (`ETHERNET (1)`), for reports and error messages.

use std::fmt;

/// libpcap `LINKTYPE_` value. A newtype rather than an enum so that values this crate does not
/// know survive into reports (the decoder says which link types it does not handle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub i32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const PPP: LinkType = LinkType(9);
    pub const RAW: LinkType = LinkType(101);
    pub const IEEE802_11: LinkType = LinkType(105);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IEEE802_11_RADIOTAP: LinkType = LinkType(127);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const NFLOG: LinkType = LinkType(239);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// The `LINKTYPE_` name without its prefix (`"ETHERNET"`, `"LINUX_SLL2"`, `"USER3"`), or
    /// the number for a value not in the table (`"4242"`).
    pub fn name(self) -> String {
        match self.0 {
            147..=162 => format!("USER{}", self.0 - 147),
            value => match known_linktype_name(value) {
                Some(name) => name.to_string(),
                None => value.to_string(),
            },
        }
    }
}

impl fmt::Display for LinkType {
    /// `ETHERNET (1)`, or just the number when it has no known name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        if name == self.0.to_string() {
            write!(f, "{name}")
        } else {
            write!(f, "{name} ({})", self.0)
        }
    }
}

/// Names from the tcpdump.org link-layer header type registry, for the values a capture of
/// host or mesh traffic is likely to carry.
fn known_linktype_name(value: i32) -> Option<&'static str> {
    Some(match value {
        0 => "NULL",
        1 => "ETHERNET",
        6 => "IEEE802_5",
        8 => "SLIP",
        9 => "PPP",
        10 => "FDDI",
        50 => "PPP_HDLC",
        51 => "PPP_ETHER",
        100 => "ATM_RFC1483",
        101 => "RAW",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        107 => "FRELAY",
        108 => "LOOP",
        113 => "LINUX_SLL",
        117 => "PFLOG",
        119 => "IEEE802_11_PRISM",
        127 => "IEEE802_11_RADIOTAP",
        192 => "PPI",
        195 => "IEEE802_15_4_WITHFCS",
        220 => "USB_LINUX_MMAPPED",
        228 => "IPV4",
        229 => "IPV6",
        239 => "NFLOG",
        240 => "NETANALYZER",
        252 => "WIRESHARK_UPPER_PDU",
        253 => "NETLINK",
        258 => "PKTAP",
        276 => "LINUX_SLL2",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_type_names() {
        assert_eq!(LinkType::LINUX_SLL2.name(), "LINUX_SLL2");
        assert_eq!(LinkType(150).name(), "USER3");
        assert_eq!(LinkType(4242).name(), "4242");
        assert_eq!(LinkType(-1).name(), "-1");
        assert_eq!(LinkType::RAW.to_string(), "RAW (101)");
        assert_eq!(LinkType(4242).to_string(), "4242");
    }
}
