//! The outbound address policy: which addresses the gateway may connect to
//! on a merchant's or an operator's behalf (merchant webhooks, provider API
//! bases). Pure classification, no I/O: CIDR networks, the special-use
//! ranges that are refused unless the operator allows them, the canonical
//! IPv4 behind IPv4-mapped, IPv4-compatible and NAT64 IPv6 forms, and a
//! strict parser for the scheme, host and port of a URL.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network (`10.0.0.0/8`, `::1/128`; a bare address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR network did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a network such as 10.0.0.0/8 or fd00::/8")]
pub struct CidrError(String);

impl Cidr {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
        Cidr {
            network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Cidr {
        let [a, b, c, d, e, f, g, h] = segments;
        Cidr {
            network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    /// Whether `ip` is in this network. An IPv4 network also holds the
    /// IPv6 forms of its addresses (see [`canonical`]).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => prefix_match(
                u128::from(u32::from(network)),
                u128::from(u32::from(ip)),
                self.prefix,
                32,
            ),
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                prefix_match(u128::from(network), u128::from(ip), self.prefix, 128)
            }
            (IpAddr::V6(network), IpAddr::V4(_)) => {
                // An IPv6 network written around the raw form (e.g. ::ffff:0:0/96).
                prefix_match(u128::from(network), u128::from(as_v6(ip)), self.prefix, 128)
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn prefix_match(network: u128, ip: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix.min(bits));
    (network >> shift) == (ip >> shift)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let text = text.trim();
        let error = || CidrError(text.to_owned());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = address.trim_start_matches('[').trim_end_matches(']');
        let network: IpAddr = address.parse().map_err(|_| error())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(error)?,
            Some(_) => return Err(error()),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parses a comma-separated list of networks; `none` (or nothing) is the empty list.
pub(crate) fn parse_cidr_list(text: &str) -> Result<Vec<Cidr>, CidrError> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::parse)
        .collect()
}

/// The IPv4 address an IPv6 address stands for, when it is an IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, not `::` nor `::1`) or
/// NAT64 well-known-prefix (`64:ff9b::a.b.c.d`) form; else `ip` itself.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    let bits = u128::from(v6);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let high = bits >> 32;
    // Mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96), compatible (::/96 but :: and ::1).
    let mapped = high == 0xffff || high == 0x0064_ff9b_0000_0000_0000_0000;
    if mapped || (high == 0 && bits > 1) {
        IpAddr::V4(low)
    } else {
        ip
    }
}

/// The special-use ranges refused unless the operator allows them, each
/// with its name (for logs and tests).
const SPECIAL: &[(Cidr, &str)] = &[
    (Cidr::v4(0, 0, 0, 0, 8), "this network / unspecified"),
    (Cidr::v4(10, 0, 0, 0, 8), "private"),
    (Cidr::v4(100, 64, 0, 0, 10), "shared address space (CGNAT)"),
    (Cidr::v4(127, 0, 0, 0, 8), "loopback"),
    (Cidr::v4(169, 254, 0, 0, 16), "link-local"),
    (Cidr::v4(172, 16, 0, 0, 12), "private"),
    (Cidr::v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (Cidr::v4(192, 0, 2, 0, 24), "documentation"),
    (Cidr::v4(192, 88, 99, 0, 24), "6to4 relay anycast"),
    (Cidr::v4(192, 168, 0, 0, 16), "private"),
    (Cidr::v4(198, 18, 0, 0, 15), "benchmarking"),
    (Cidr::v4(198, 51, 100, 0, 24), "documentation"),
    (Cidr::v4(203, 0, 113, 0, 24), "documentation"),
    (Cidr::v4(224, 0, 0, 0, 4), "multicast"),
    (Cidr::v4(240, 0, 0, 0, 4), "reserved / broadcast"),
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (Cidr::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "local-use NAT64"),
    (Cidr::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
    (
        Cidr::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "IETF protocol assignments (Teredo)",
    ),
    (Cidr::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    (Cidr::v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), "6to4"),
    (Cidr::v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation"),
    (
        Cidr::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "unique local (private)",
    ),
    (Cidr::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (Cidr::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local"),
    (Cidr::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// The special-use range `ip` (in its [`canonical`] form) is in, if any.
pub(crate) fn special_range(ip: IpAddr) -> Option<&'static str> {
    let ip = canonical(ip);
    SPECIAL
        .iter()
        .find(|(network, _)| network.contains(ip))
        .map(|(_, name)| *name)
}

/// The networks a sandbox may reach by default: loopback and private.
pub(crate) fn local_networks() -> Vec<Cidr> {
    vec![
        Cidr::v4(127, 0, 0, 0, 8),
        Cidr::v4(10, 0, 0, 0, 8),
        Cidr::v4(172, 16, 0, 0, 12),
        Cidr::v4(192, 168, 0, 0, 16),
        Cidr::v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
        Cidr::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
    ]
}

/// Where outbound connections may go: public addresses, plus the
/// special-use ones in `allow_nets`; `http://` only with `allow_http`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Whether plain `http://` URLs are accepted.
    pub allow_http: bool,
    /// Special-use networks allowed all the same (e.g. a local receiver).
    pub allow_nets: Vec<Cidr>,
}

impl EgressPolicy {
    /// Production: https only, public addresses only.
    pub fn strict() -> EgressPolicy {
        EgressPolicy {
            allow_http: false,
            allow_nets: Vec::new(),
        }
    }

    /// Whether a connection to `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        special_range(ip).is_none() || self.allow_nets.iter().any(|network| network.contains(ip))
    }
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy::strict()
    }
}

/// A URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `http://`
    Http,
    /// `https://`
    Https,
}

/// A URL's host: an IP literal or a DNS name (lowercase, no trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// A canonical dotted quad or a bracketed IPv6 literal.
    Ip(IpAddr),
    /// A DNS name.
    Name(String),
}

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `http` or `https`.
    pub(crate) scheme: Scheme,
    /// The host.
    pub(crate) host: Host,
    /// The port, explicit or the scheme's.
    pub(crate) port: u16,
}

/// Why a URL is not an acceptable outbound destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum UrlError {
    /// Not an absolute `http(s)://` URL, or longer than 2048 characters, or with whitespace.
    #[error("must be an absolute https:// URL of at most 2048 characters")]
    Malformed,
    /// A scheme other than `https` (or `http` when allowed).
    #[error("must use https://")]
    Scheme,
    /// `user:password@` in the authority.
    #[error("must not carry credentials (user:password@)")]
    Userinfo,
    /// A host that is not a DNS name, a canonical dotted quad or a bracketed IPv6 address
    /// (decimal, octal, hex or shortened IPv4 spellings such as `2130706433` or `127.1`).
    #[error("must name its host as a DNS name, a dotted quad such as 203.0.113.7, or [IPv6]")]
    Host,
    /// An invalid port.
    #[error("has an invalid port")]
    Port,
}

/// Parses the scheme, host and port of `url`, strictly: no userinfo, no
/// backslashes, no percent-encoded or non-ASCII hosts, and a host whose last
/// label is numeric must be a canonical dotted quad (so `http://2130706433/`,
/// `http://0x7f.1/`, `http://017700000001/` and `http://127.1/` are refused
/// rather than read as 127.0.0.1 by some parser).
pub(crate) fn parse_url(url: &str) -> Result<Target, UrlError> {
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::Malformed);
    }
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::Malformed)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        _ => return Err(UrlError::Scheme),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if rest.contains('\\') {
        // Some parsers read a backslash as a slash, others as part of the host.
        return Err(UrlError::Malformed);
    }
    if authority.contains('@') {
        return Err(UrlError::Userinfo);
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']').ok_or(UrlError::Host)?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| UrlError::Host)?;
        (Host::Ip(IpAddr::V6(ip)), after)
    } else {
        let (name, after) = match authority.find(':') {
            Some(at) => authority.split_at(at),
            None => (authority, ""),
        };
        (parse_host_name(name)?, after)
    };
    let port = match port {
        "" => match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        },
        port => {
            let digits = port.strip_prefix(':').ok_or(UrlError::Port)?;
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(UrlError::Port);
            }
            digits
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or(UrlError::Port)?
        }
    };
    Ok(Target { scheme, host, port })
}

/// A host spelled without brackets: a canonical dotted quad or a DNS name.
pub(crate) fn parse_host_name(name: &str) -> Result<Host, UrlError> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err(UrlError::Host);
    }
    let labels: Vec<&str> = name.split('.').collect();
    let numeric = |label: &str| {
        !label.is_empty()
            && (label.bytes().all(|b| b.is_ascii_digit())
                || label
                    .strip_prefix("0x")
                    .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit())))
    };
    if labels.last().is_some_and(|last| numeric(last)) {
        // An IPv4 address, however spelled: only the canonical dotted quad is accepted.
        let ip: Ipv4Addr = name.parse().map_err(|_| UrlError::Host)?;
        if ip.to_string() != name {
            return Err(UrlError::Host);
        }
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !labels.iter().all(valid_label) {
        return Err(UrlError::Host);
    }
    Ok(Host::Name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn special_ranges_ipv4_and_ipv6_and_their_mapped_forms() {
        let refused = [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.0.0.8",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::a9fe:a9fe",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.1.2.3",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2001::1",
            "100::1",
        ];
        for text in refused {
            assert!(special_range(ip(text)).is_some(), "{text} must be special");
            assert!(
                !EgressPolicy::strict().permits(ip(text)),
                "{text} must be refused"
            );
        }
        let public = [
            "93.184.215.14",
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82a::200e",
            "::ffff:1.1.1.1",
            "64:ff9b::8.8.8.8",
        ];
        for text in public {
            assert_eq!(special_range(ip(text)), None, "{text} is public");
            assert!(EgressPolicy::strict().permits(ip(text)));
        }
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical(ip("::ffff:7f00:1")), ip("127.0.0.1"));
        assert_eq!(canonical(ip("64:ff9b::a9fe:a9fe")), ip("169.254.169.254"));
        assert_eq!(canonical(ip("::7f00:1")), ip("127.0.0.1"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
        assert_eq!(canonical(ip("::")), ip("::"));
        assert_eq!(canonical(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(canonical(ip("10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn cidr_parsing_and_matching() {
        let net: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("127.9.9.9")) && net.contains(ip("::ffff:127.0.0.2")));
        assert!(!net.contains(ip("128.0.0.1")) && !net.contains(ip("::1")));
        let host: Cidr = "10.1.2.3".parse().unwrap();
        assert_eq!(host.to_string(), "10.1.2.3/32");
        assert!(host.contains(ip("10.1.2.3")) && !host.contains(ip("10.1.2.4")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fc00::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("2606:4700::1")));
        let bracketed: Cidr = "[::1]/128".parse().unwrap();
        assert!(bracketed.contains(ip("::1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/x",
            "/8",
            "10.0.0.0/-1",
            "localhost",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        let list = parse_cidr_list("127.0.0.0/8, 10.1.0.0/16,").unwrap();
        assert_eq!(list.len(), 2);
        assert!(parse_cidr_list("none").unwrap().is_empty());
        assert!(parse_cidr_list("127.0.0.0/8,nope").is_err());
    }

    #[test]
    fn the_allow_list_opens_special_ranges() {
        let policy = EgressPolicy {
            allow_http: true,
            allow_nets: parse_cidr_list("127.0.0.0/8,10.1.0.0/16").unwrap(),
        };
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(policy.permits(ip("10.1.200.3")));
        assert!(!policy.permits(ip("10.2.0.1")));
        assert!(!policy.permits(ip("169.254.169.254")));
        assert!(!policy.permits(ip("::1")));
        let sandbox = EgressPolicy {
            allow_http: true,
            allow_nets: local_networks(),
        };
        for allowed in ["127.0.0.1", "::1", "10.0.0.1", "192.168.0.2", "fd00::1"] {
            assert!(sandbox.permits(ip(allowed)), "{allowed}");
        }
        for refused in [
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "100.64.0.1",
            "224.0.0.1",
        ] {
            assert!(!sandbox.permits(ip(refused)), "{refused}");
        }
    }

    #[test]
    fn url_parsing_is_strict_about_hosts() {
        let target = parse_url("https://Hooks.Example.com:8443/x?y#z").unwrap();
        assert_eq!(target.scheme, Scheme::Https);
        assert_eq!(target.host, Host::Name("hooks.example.com".to_owned()));
        assert_eq!(target.port, 8443);
        assert_eq!(
            parse_url("http://127.0.0.1/").unwrap().host,
            Host::Ip(ip("127.0.0.1"))
        );
        assert_eq!(parse_url("http://127.0.0.1/").unwrap().port, 80);
        assert_eq!(parse_url("https://[::1]:9/").unwrap().host, Host::Ip(ip("::1")));
        assert_eq!(
            parse_url("https://[::ffff:7f00:1]/").unwrap().host,
            Host::Ip(ip("::ffff:127.0.0.1"))
        );
        assert_eq!(
            parse_url("https://example.com./").unwrap().host,
            Host::Name("example.com".to_owned())
        );
        for spelled in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://017700000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.1/",
            "http://127.000.000.001/",
            "http://1.2.3.4.5/",
            "http://foo.123/",
            "http://foo.0x1f/",
            "https://ex%41mple.com/",
            "https://exämple.com/",
            "https://-bad.com/",
            "https://a..b/",
            "https://[127.0.0.1]/",
            "https://[fe80::1%25eth0]/",
        ] {
            assert_eq!(parse_url(spelled), Err(UrlError::Host), "{spelled}");
        }
        assert_eq!(
            parse_url("https://user:pass@example.com/"),
            Err(UrlError::Userinfo)
        );
        assert_eq!(parse_url("https://user@example.com/"), Err(UrlError::Userinfo));
        assert_eq!(parse_url("ftp://example.com/"), Err(UrlError::Scheme));
        assert_eq!(parse_url("example.com"), Err(UrlError::Malformed));
        assert_eq!(parse_url("https://example.com\\@evil/"), Err(UrlError::Malformed));
        assert_eq!(parse_url("https://exa mple.com/"), Err(UrlError::Malformed));
        assert_eq!(parse_url("https://example.com:0/"), Err(UrlError::Port));
        assert_eq!(parse_url("https://example.com:99999/"), Err(UrlError::Port));
        assert_eq!(parse_url("https://example.com:+1/"), Err(UrlError::Port));
        assert_eq!(parse_url("https://example.com:/"), Err(UrlError::Port));
        assert_eq!(parse_url("https:///x"), Err(UrlError::Host));
    }
}
