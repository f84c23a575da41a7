//! Detectors for line-based text protocols: Redis (RESP and inline commands), IMAP, POP3,
//! SMTP and FTP (which share the `220` greeting), IRC and XMPP. Each looks at the first line
//! of both sides and adds what it fits to `found`; no line's content is kept.

use super::bytes::{contains_ci, first_line, line_is_command, starts_with_ci, strip_prefix_ci, trim_ascii};
use super::types::{Evidence, Found, Protocol};

pub(super) fn redis(client: &[u8], server: &[u8], found: &mut Found) {
    // RESP array of bulk strings: "*<n>\r\n$<len>\r\n..."
    if let Some(rest) = client.strip_prefix(b"*") {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if (1..=7).contains(&digits) {
            let tail = rest.get(digits..).unwrap_or_default();
            if tail.starts_with(b"\r\n$") {
                found.push((Protocol::Redis, Evidence::Strong));
                return;
            }
            if b"\r\n$".starts_with(tail) {
                found.push((Protocol::Redis, Evidence::Weak));
                return;
            }
        }
    }
    let (line, _) = first_line(client);
    let inline = [b"PING".as_slice(), b"HELLO", b"INFO"]
        .iter()
        .any(|cmd| line_is_command(line, cmd));
    let (reply, _) = first_line(server);
    if server.starts_with(b"+PONG\r\n") {
        found.push((Protocol::Redis, Evidence::Strong));
    } else if inline
        // A bare "+OK" line is how Redis acknowledges; POP3 banners carry text after "+OK ".
        || reply == b"+OK"
        || [b"-ERR ".as_slice(), b"-NOAUTH ", b"-WRONGPASS ", b"-DENIED "]
            .iter()
            .any(|p| server.starts_with(p))
    {
        found.push((Protocol::Redis, Evidence::Weak));
    }
}

pub(super) fn imap(client: &[u8], server: &[u8], found: &mut Found) {
    let (banner, _) = first_line(server);
    let greeting = [b"* OK".as_slice(), b"* PREAUTH", b"* BYE"]
        .iter()
        .any(|g| starts_with_ci(banner, g));
    if greeting || imap_tagged_command(client).is_some() {
        found.push((Protocol::Imap, Evidence::Strong));
    }
}

/// `<tag> <COMMAND>` with a tag of IMAP atom characters and a command IMAP clients send first.
pub(super) fn imap_tagged_command(client: &[u8]) -> Option<&[u8]> {
    const FIRST_COMMANDS: &[&[u8]] = &[
        b"CAPABILITY",
        b"STARTTLS",
        b"LOGIN",
        b"AUTHENTICATE",
        b"NOOP",
        b"LOGOUT",
        b"ID",
        b"ENABLE",
        b"SELECT",
        b"EXAMINE",
        b"LIST",
    ];
    let (line, _) = first_line(client);
    let mut words = line.split(|&b| b == b' ');
    let tag = words.next()?;
    let command = words.next()?;
    let tag_ok =
        !tag.is_empty() && tag.len() <= 32 && tag.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b));
    (tag_ok && FIRST_COMMANDS.iter().any(|c| command.eq_ignore_ascii_case(c))).then_some(command)
}

pub(super) fn pop3(client: &[u8], server: &[u8], found: &mut Found) {
    let (banner, _) = first_line(server);
    let (line, _) = first_line(client);
    let pop_only_command = [b"CAPA".as_slice(), b"STLS", b"APOP", b"UIDL"]
        .iter()
        .any(|c| line_is_command(line, c));
    if starts_with_ci(banner, b"+OK ") || pop_only_command {
        found.push((Protocol::Pop3, Evidence::Strong));
    } else if line_is_command(line, b"USER") && !irc_user(line) {
        found.push((Protocol::Pop3, Evidence::Weak));
    }
}

/// SMTP and FTP both greet with "220"; the banner text or the client's first command usually
/// tells them apart, and the port breaks the tie when neither does.
pub(super) fn smtp_ftp(client: &[u8], server: &[u8], found: &mut Found) {
    let (banner, _) = first_line(server);
    let (line, _) = first_line(client);
    let smtp_client = [b"EHLO".as_slice(), b"HELO", b"LHLO"]
        .iter()
        .any(|c| line_is_command(line, c));
    let greets_220 = banner.starts_with(b"220") && banner.get(3).is_none_or(|&b| b == b' ' || b == b'-');
    // SMTP has no USER command, so USER after a 220 greeting is FTP's login.
    let ftp_user = greets_220 && line_is_command(line, b"USER") && !irc_user(line);
    let ftp_client = ftp_user
        || is_ftp_auth_tls(line)
        || [b"FEAT".as_slice(), b"SYST", b"OPTS"]
            .iter()
            .any(|c| line_is_command(line, c));
    let says_smtp = contains_ci(banner, b"SMTP");
    let says_ftp = contains_ci(banner, b"FTP");
    if smtp_client || (greets_220 && says_smtp && !says_ftp) {
        found.push((Protocol::Smtp, Evidence::Strong));
    } else if ftp_client || (greets_220 && says_ftp && !says_smtp) {
        found.push((Protocol::Ftp, Evidence::Strong));
    } else if greets_220 {
        found.push((Protocol::Smtp, Evidence::Weak));
        found.push((Protocol::Ftp, Evidence::Weak));
    } else if line_is_command(line, b"USER") && !irc_user(line) {
        found.push((Protocol::Ftp, Evidence::Weak));
    }
}

pub(super) fn is_ftp_auth_tls(line: &[u8]) -> bool {
    let Some(arg) = strip_prefix_ci(line, b"AUTH ") else {
        return false;
    };
    let arg = trim_ascii(arg);
    [b"TLS".as_slice(), b"SSL", b"TLS-C", b"TLS-P"]
        .iter()
        .any(|a| arg.eq_ignore_ascii_case(a))
}

pub(super) fn irc(client: &[u8], server: &[u8], found: &mut Found) {
    let (line, _) = first_line(client);
    let (banner, _) = first_line(server);
    let client_strong = line_is_command(line, b"NICK")
        || starts_with_ci(line, b"CAP LS")
        || starts_with_ci(line, b"CAP REQ")
        || irc_user(line);
    // ":irc.example.net NOTICE * :*** Looking up your hostname..." or the older "NOTICE AUTH".
    let server_strong =
        (banner.first() == Some(&b':') && contains_ci(banner, b" NOTICE ")) || starts_with_ci(banner, b"NOTICE AUTH");
    if client_strong || server_strong {
        found.push((Protocol::Irc, Evidence::Strong));
    } else if line_is_command(line, b"PASS") {
        found.push((Protocol::Irc, Evidence::Weak));
    }
}

/// IRC's `USER <user> <mode> <unused> :<realname>`, which FTP's and POP3's `USER <name>` is not.
fn irc_user(line: &[u8]) -> bool {
    strip_prefix_ci(line, b"USER ").is_some_and(|args| {
        let mut params = args.splitn(4, |&b| b == b' ');
        params.nth(3).is_some_and(|last| last.first() == Some(&b':'))
    })
}

pub(super) fn xmpp(client: &[u8], server: &[u8], found: &mut Found) {
    for side in [client, server] {
        let head = trim_xml_start(side);
        let head = head.get(..head.len().min(512)).unwrap_or(head);
        let stream = contains_ci(head, b"<stream:stream") || contains_ci(head, b"jabber:");
        if stream {
            found.push((Protocol::Xmpp, Evidence::Strong));
            return;
        }
        if head.starts_with(b"<?xml") {
            found.push((Protocol::Xmpp, Evidence::Weak));
            return;
        }
    }
}

pub(super) fn trim_xml_start(data: &[u8]) -> &[u8] {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let start = data.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(data.len());
    data.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_no_leak, id, proto};
    use super::*;

    #[test]
    fn redis() {
        assert_eq!(
            proto(b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n", b"$-1\r\n", 1),
            Protocol::Redis
        );
        assert_eq!(proto(b"PING\r\n", b"+PONG\r\n", 1), Protocol::Redis);
        assert_eq!(proto(b"ping\r\n", b"", 6379), Protocol::Redis);
        assert_eq!(proto(b"", b"-NOAUTH Authentication required.\r\n", 1), Protocol::Redis);
        assert_eq!(proto(b"", b"+OK\r\n", 6379), Protocol::Redis);
        let info = id(b"*3\r\n$3\r\nSET\r\n$5\r\ntoken\r\n$6\r\nsecret\r\n", b"+OK\r\n", 6379);
        assert_no_leak(&info, &["token", "secret"]);
    }

    #[test]
    fn imap_pop3() {
        let banner = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n";
        assert_eq!(proto(b"", banner, 1), Protocol::Imap);
        assert_eq!(proto(b"a001 CAPABILITY\r\n", b"", 1), Protocol::Imap);
        let login = id(b"A1 LOGIN alice s3cret\r\n", b"", 143);
        assert_eq!(login.protocol, Protocol::Imap);
        assert_no_leak(&login, &["alice", "s3cret"]);
        assert_eq!(proto(b"", b"+OK Dovecot ready.\r\n", 1), Protocol::Pop3);
        assert_eq!(proto(b"CAPA\r\n", b"", 1), Protocol::Pop3);
        assert_eq!(proto(b"USER alice\r\n", b"", 110), Protocol::Pop3);
        assert_eq!(proto(b"USER alice\r\n", b"", 21), Protocol::Ftp);
    }

    #[test]
    fn smtp_and_ftp_banners() {
        let ehlo = b"EHLO client.example\r\n";
        assert_eq!(proto(ehlo, b"220 mx.example ESMTP Postfix\r\n", 25), Protocol::Smtp);
        assert_eq!(proto(ehlo, b"220 hello\r\n", 2525), Protocol::Smtp);
        assert_eq!(proto(b"", b"220-mx.example ESMTP\r\n", 1), Protocol::Smtp);
        assert_eq!(proto(b"", b"220 (vsFTPd 3.0.5)\r\n", 1), Protocol::Ftp);
        assert_eq!(proto(b"AUTH TLS\r\n", b"220 Welcome\r\n", 2121), Protocol::Ftp);
        assert_eq!(proto(b"USER anonymous\r\n", b"220 Welcome\r\n", 1), Protocol::Ftp);
        // A bare "220 " banner: the port breaks the tie.
        assert_eq!(proto(b"", b"220 Welcome\r\n", 25), Protocol::Smtp);
        assert_eq!(proto(b"", b"220 Welcome\r\n", 587), Protocol::Smtp);
        assert_eq!(proto(b"", b"220 Welcome\r\n", 21), Protocol::Ftp);
    }

    #[test]
    fn xmpp_irc() {
        let stream = b"<?xml version='1.0'?><stream:stream to='example.com' \
                       xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
        assert_eq!(proto(stream, b"", 1), Protocol::Xmpp);
        assert_eq!(proto(b"<?xml version='1.0'?>", b"", 5222), Protocol::Xmpp);
        assert_eq!(proto(b"NICK alice\r\nUSER alice 0 * :Alice\r\n", b"", 1), Protocol::Irc);
        assert_eq!(proto(b"CAP LS 302\r\n", b"", 1), Protocol::Irc);
        let notice = b":irc.example.net NOTICE * :*** Looking up your hostname...\r\n";
        assert_eq!(proto(b"", notice, 1), Protocol::Irc);
        assert_eq!(proto(b"USER alice 0 * :Alice\r\n", b"", 21), Protocol::Irc);
    }
}
