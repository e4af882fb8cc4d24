//! Origins: where a layer's headers and credentials may go.
//!
//! An origin is `scheme://host[:port]`. Both layers take any number of origins through their
//! builders' `origin(..)`; a request whose URI is not at one of them passes the layer untouched.
//! This is the one place that parses origins, matches requests against them and decides what
//! counts as loopback, for the tower services and the reqwest-middleware adapters alike.
//!
//! ```
//! use tower_client_headers::DefaultHeadersLayer;
//!
//! // `https://api.example.com`, `https://API.example.com:443/` name the same origin.
//! let layer = DefaultHeadersLayer::builder()
//!     .header("x-api-key", "k-123")
//!     .origin("https://API.example.com:443/")
//!     .build()?;
//! # Ok::<(), tower_client_headers::Error>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use http::Uri;

use crate::error::{Error, ErrorKind};

/// A parsed origin: lowercase scheme, host and an explicit port.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: Box<str>,
    host: Host,
    port: u16,
}

#[derive(Clone, PartialEq, Eq)]
enum Host {
    /// A registered name, stored lowercase.
    Name(Box<str>),
    /// An IP literal, compared as an address so `[::1]` equals `[0:0::1]`.
    Ip(IpAddr),
}

/// The parts of a request URI that origin matching needs, borrowed from an `http::Uri` or a
/// `url::Url` (reqwest) so both adapters go through the same rule.
///
/// Host and port are read only when a rule needs them: `http::Uri` parses its authority on
/// every `host()` and `port_u16()` call, and most requests (a layer with no origins, an
/// `https` request) never need them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    scheme: Option<&'a str>,
    authority: TargetAuthority<'a>,
}

#[derive(Clone, Copy, Debug)]
enum TargetAuthority<'a> {
    /// Parsed on demand.
    Uri(Option<&'a http::uri::Authority>),
    /// Already parsed (`url::Url` stores host and port apart).
    #[cfg(feature = "reqwest-middleware")]
    Parts {
        /// As `Url::host_str` gives it: IPv6 in brackets, like `Uri::host`.
        host: Option<&'a str>,
        port: Option<u16>,
    },
}

impl<'a> Target<'a> {
    /// Whether a request to `uri` would go in plain text to another machine:
    /// `Target::from_uri(uri).is_plaintext_remote()`, with `https` (nearly every request, and
    /// how `http::Uri` gives the standard scheme in any case) decided by one inlined compare,
    /// without looking at the host.
    #[inline]
    pub(crate) fn uri_is_plaintext_remote(uri: &Uri) -> bool {
        uri.scheme_str() != Some("https") && Target::from_uri(uri).is_plaintext_remote()
    }

    #[inline]
    pub(crate) fn from_uri(uri: &'a Uri) -> Self {
        Self {
            scheme: uri.scheme_str(),
            authority: TargetAuthority::Uri(uri.authority()),
        }
    }

    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn from_url(url: &'a reqwest::Url) -> Self {
        Self {
            scheme: Some(url.scheme()),
            authority: TargetAuthority::Parts {
                host: url.host_str(),
                port: url.port(),
            },
        }
    }

    /// As `http::Uri::host` gives it: IPv6 in brackets. `None` for an authority that names
    /// no host a rule can trust (see [`checked`]).
    fn host(&self) -> Option<&'a str> {
        match self.authority {
            TargetAuthority::Uri(authority) => {
                authority.and_then(checked).map(http::uri::Authority::host)
            }
            #[cfg(feature = "reqwest-middleware")]
            TargetAuthority::Parts { host, .. } => host,
        }
    }

    fn port(&self) -> Option<u16> {
        match self.authority {
            TargetAuthority::Uri(authority) => authority
                .and_then(checked)
                .and_then(http::uri::Authority::port_u16),
            #[cfg(feature = "reqwest-middleware")]
            TargetAuthority::Parts { port, .. } => port,
        }
    }

    /// `scheme://host:port` for messages (a host is never a secret; userinfo is not part of it).
    pub(crate) fn describe(&self) -> String {
        match (self.scheme, self.host(), self.effective_port()) {
            (Some(scheme), Some(host), Some(port)) => format!("`{scheme}://{host}:{port}`"),
            (Some(scheme), Some(host), None) => format!("`{scheme}://{host}`"),
            _ => "a request URI without scheme://host".to_owned(),
        }
    }

    fn effective_port(&self) -> Option<u16> {
        self.port().or_else(|| self.scheme.and_then(default_port))
    }

    /// Whether this request would travel in plain text to a host other than this machine.
    /// A URI without a scheme cannot be shown to be safe, so it counts as plain text unless its
    /// host is loopback.
    #[inline]
    pub(crate) fn is_plaintext_remote(&self) -> bool {
        !self.scheme.is_some_and(is_secure_scheme) && !self.host().is_some_and(is_loopback_host)
    }
}

/// `https` or `wss`, in any case.
#[inline]
fn is_secure_scheme(scheme: &str) -> bool {
    // `http::Uri` gives its standard schemes in lowercase: compare those exactly first.
    matches!(scheme, "https" | "wss")
        || scheme.eq_ignore_ascii_case("https")
        || scheme.eq_ignore_ascii_case("wss")
}

fn default_port(scheme: &str) -> Option<u16> {
    if is_secure_scheme(scheme) {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some(80)
    } else {
        None
    }
}

/// Loopback, exactly: `127.0.0.0/8`, `::1` in any spelling (IPv4-mapped `::ffff:127.x.y.z`
/// included) and the name `localhost` in any case. Nothing else: `*.localhost` and `localhost.`
/// are sent to DNS by getaddrinfo on common setups (`hosts: files dns`), so they may resolve to
/// any address.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    match parse_ip(host) {
        Some(IpAddr::V4(v4)) => v4.is_loopback(),
        Some(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => host.eq_ignore_ascii_case("localhost"),
    }
}

fn parse_ip(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if host.starts_with(|c: char| c.is_ascii_digit()) {
        return host.parse::<IpAddr>().ok();
    }
    None
}

impl Origin {
    /// Parse `scheme://host[:port]` with an optional trailing `/`.
    pub(crate) fn parse(input: &str) -> Result<Self, Error> {
        let invalid = |problem: &str| {
            Error::new(
                ErrorKind::InvalidOrigin,
                format!(
                    "invalid origin {}: {problem}; write an origin as scheme://host[:port], \
                     like https://api.example.com",
                    describe(input)
                ),
            )
        };
        // `http::Uri` drops a fragment silently; an origin with one is a mistake worth reporting.
        if input.contains('#') {
            return Err(invalid(
                "it is followed by a fragment (not shown), which an origin may not have",
            ));
        }
        let uri: Uri = input
            .parse()
            .map_err(|_| invalid("not a URI of the form scheme://host[:port]"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(invalid("it has no scheme://host"));
        };
        if authority.as_str().contains('@') {
            return Err(invalid("userinfo (user:password@) is not allowed"));
        }
        if uri.query().is_some() {
            return Err(invalid(
                "it is followed by a query (not shown), which an origin may not have",
            ));
        }
        if !matches!(uri.path(), "" | "/") {
            return Err(invalid(
                "it is followed by a path (not shown), which an origin may not have",
            ));
        }
        // `http::Uri` accepts `host:65536` but reports no port for it; don't read that as the
        // default port (a layer meant for one port would then apply to another).
        let written_port = &authority.as_str()[authority.host().len()..];
        if uri.port_u16().is_none() && written_port.len() > 1 {
            return Err(invalid("the port is out of range (0-65535)"));
        }
        let port = match uri.port_u16().or_else(|| default_port(scheme)) {
            Some(port) => port,
            None => return Err(invalid("the scheme has no default port; give one")),
        };
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("the host is empty"));
        }
        let host = match parse_ip(host) {
            Some(ip) => Host::Ip(ip),
            None => Host::Name(host.to_ascii_lowercase().into()),
        };
        Ok(Self {
            scheme: scheme.to_ascii_lowercase().into(),
            host,
            port,
        })
    }

    pub(crate) fn matches(&self, target: &Target<'_>) -> bool {
        let (Some(scheme), Some(host)) = (target.scheme, target.host()) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(&self.scheme)
            && target.effective_port() == Some(self.port)
            && match &self.host {
                Host::Name(name) => host.eq_ignore_ascii_case(name),
                Host::Ip(ip) => parse_ip(host) == Some(*ip),
            }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        match &self.host {
            Host::Name(name) => f.write_str(name)?,
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
        }
        write!(f, ":{}", self.port)
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where one request goes, exactly as origin matching sees it: lowercase scheme, host (an
/// address for IP literals, else lowercase) and effective port. Any part may be missing (a
/// relative URI has none). Per-request credentials are bound to the `Place` of the first request
/// the layers see them on ([`HeaderOverrides`](crate::HeaderOverrides)).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Place {
    scheme: Option<Box<str>>,
    host: Option<Host>,
    port: Option<u16>,
}

impl Place {
    pub(crate) fn of(target: &Target<'_>) -> Self {
        Self {
            scheme: target.scheme.map(|s| s.to_ascii_lowercase().into()),
            host: target.host().map(|h| match parse_ip(h) {
                Some(ip) => Host::Ip(ip),
                None => Host::Name(h.to_ascii_lowercase().into()),
            }),
            port: target.effective_port(),
        }
    }

    /// Whether `target` goes to this place; the same as `Place::of(target) == *self`, without
    /// allocating.
    pub(crate) fn is(&self, target: &Target<'_>) -> bool {
        let scheme = match (&self.scheme, target.scheme) {
            (Some(a), Some(b)) => b.eq_ignore_ascii_case(a),
            (None, None) => true,
            _ => false,
        };
        let host = match (&self.host, target.host()) {
            (Some(Host::Name(a)), Some(b)) => parse_ip(b).is_none() && b.eq_ignore_ascii_case(a),
            (Some(Host::Ip(a)), Some(b)) => parse_ip(b) == Some(*a),
            (None, None) => true,
            _ => false,
        };
        scheme && host && self.port == target.effective_port()
    }
}

impl fmt::Debug for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Scheme, host and port only: never userinfo, path or query.
        match (&self.scheme, &self.host) {
            (Some(scheme), Some(host)) => {
                write!(f, "{scheme}://")?;
                match host {
                    Host::Name(name) => f.write_str(name)?,
                    Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
                    Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
                }
                match self.port {
                    Some(port) => write!(f, ":{port}"),
                    None => Ok(()),
                }
            }
            _ => f.write_str("<no scheme://host>"),
        }
    }
}

/// `authority`, unless it is one `http::uri::Authority::from_static` let through unchecked:
/// it validates only up to a `/`, `?` or `#` and keeps the rest (http 1.5), and `host()` may
/// then panic. A parsed authority never holds those characters. Such an authority names no
/// host a rule can trust, so the rules see none: credentials scoped to origins are not sent,
/// plain `http` is refused, a `401` is not taken for one from a known origin.
#[inline]
fn checked(authority: &http::uri::Authority) -> Option<&http::uri::Authority> {
    let unchecked = authority
        .as_str()
        .bytes()
        .any(|b| matches!(b, b'/' | b'?' | b'#'));
    (!unchecked).then_some(authority)
}

/// A request's [`Place`] as 64 bits, for the hot path: it needs no allocation, so a response
/// future can carry it. Hashed with SipHash under a random per-process key, so two places
/// collide only by chance (about 2^-64), never by an attacker's choice of host name. Used only to
/// judge where a `401` came from, where a collision costs at most one token fetch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct OriginId(u64);

impl OriginId {
    pub(crate) fn of(target: &Target<'_>) -> Self {
        use std::hash::{BuildHasher, Hash, Hasher};
        static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        let mut h = KEYS.get_or_init(Default::default).build_hasher();
        match target.scheme {
            Some(scheme) => {
                1u8.hash(&mut h);
                write_lowercase(&mut h, scheme);
            }
            None => 0u8.hash(&mut h),
        }
        match target.host() {
            Some(host) => match parse_ip(host) {
                Some(ip) => (1u8, ip).hash(&mut h),
                None => {
                    2u8.hash(&mut h);
                    write_lowercase(&mut h, host);
                }
            },
            None => 0u8.hash(&mut h),
        }
        target.effective_port().hash(&mut h);
        Self(h.finish())
    }
}

/// Where a request that carries a cached token went, kept in its response future for the one
/// case that asks: a `401` that says where it came from (tower-http's `RequestUri`, with the
/// `tower-http` feature). The request's scheme and authority are copied as they are (no
/// parsing, no hashing: with the larger future it makes, about 100 instructions per request)
/// and turned into an [`OriginId`] only for such a response; one too long to copy is hashed
/// at once. Without the feature nothing can ask, and
/// this is empty.
#[derive(Clone, Copy)]
pub(crate) struct SentTo {
    #[cfg(feature = "tower-http")]
    repr: SentToRepr,
}

#[cfg(feature = "tower-http")]
#[derive(Clone, Copy)]
enum SentToRepr {
    /// `buf[..scheme]` is the scheme, `buf[scheme..len]` the authority (`None`: the URI had
    /// none), both as the URI spelled them.
    Copied {
        scheme: Option<u8>,
        len: Option<u8>,
        buf: [u8; SENT_TO_COPIED],
    },
    Hashed(OriginId),
}

/// Scheme and authority up to this many bytes are copied (`https` and a 43-byte host:port).
#[cfg(feature = "tower-http")]
const SENT_TO_COPIED: usize = 48;

impl SentTo {
    #[inline]
    pub(crate) fn of(uri: &Uri) -> Self {
        #[cfg(feature = "tower-http")]
        {
            let scheme = uri.scheme_str().map(str::as_bytes);
            let authority = uri.authority().map(|a| a.as_str().as_bytes());
            let scheme_len = scheme.map_or(0, <[u8]>::len);
            let total = scheme_len + authority.map_or(0, <[u8]>::len);
            if total > SENT_TO_COPIED {
                return Self {
                    repr: SentToRepr::Hashed(OriginId::of(&Target::from_uri(uri))),
                };
            }
            let mut buf = [0u8; SENT_TO_COPIED];
            if let Some(scheme) = scheme {
                buf[..scheme_len].copy_from_slice(scheme);
            }
            if let Some(authority) = authority {
                buf[scheme_len..total].copy_from_slice(authority);
            }
            // Both fit in a `u8`: `total` is at most `SENT_TO_COPIED`.
            Self {
                repr: SentToRepr::Copied {
                    scheme: scheme.map(|_| scheme_len as u8),
                    len: authority.map(|_| total as u8),
                    buf,
                },
            }
        }
        #[cfg(not(feature = "tower-http"))]
        {
            let _ = uri;
            Self {}
        }
    }

    /// The [`OriginId`] of where the request went: always `Some` with the feature; `None`
    /// without it, where nothing is kept.
    pub(crate) fn origin_id(&self) -> Option<OriginId> {
        #[cfg(feature = "tower-http")]
        match &self.repr {
            SentToRepr::Hashed(id) => Some(*id),
            SentToRepr::Copied { scheme, len, buf } => {
                let scheme_len = usize::from(scheme.unwrap_or(0));
                // Copied from a `&str`, so it reads back; never an early `None`, which would
                // let any `401` drop the token.
                let scheme = scheme.and_then(|_| std::str::from_utf8(buf.get(..scheme_len)?).ok());
                // What was copied parses again, but for an authority `from_static` took
                // unchecked (see `checked`): that one names no host, as one that is absent.
                let authority = len.and_then(|len| {
                    let copied = buf.get(scheme_len..usize::from(len))?;
                    http::uri::Authority::try_from(copied).ok()
                });
                Some(OriginId::of(&Target {
                    scheme,
                    authority: TargetAuthority::Uri(authority.as_ref()),
                }))
            }
        }
        #[cfg(not(feature = "tower-http"))]
        None
    }
}

/// `s` in ASCII lowercase, then a terminator, into `h`: a chunk per write, not a byte (SipHash
/// pays a call per write; a byte at a time cost about 2,000 instructions for one host).
fn write_lowercase(h: &mut impl std::hash::Hasher, s: &str) {
    let mut buf = [0u8; 64];
    for chunk in s.as_bytes().chunks(buf.len()) {
        let out = &mut buf[..chunk.len()];
        for (o, b) in out.iter_mut().zip(chunk) {
            *o = b.to_ascii_lowercase();
        }
        h.write(out);
    }
    h.write_u8(0xff);
}

/// Names an origin in an error without echoing anything that could be a secret: a userinfo
/// part, a query or a string that did not even parse as a URI (it may be a token pasted in the
/// wrong place) is not repeated.
fn describe(input: &str) -> String {
    match input.parse::<Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                let redacted = if authority.as_str().contains('@') {
                    "<redacted>@"
                } else {
                    ""
                };
                let port = authority
                    .port_u16()
                    .map(|p| format!(":{p}"))
                    .unwrap_or_default();
                format!("`{scheme}://{redacted}{}{port}`", authority.host())
            }
            _ => "(not shown: no scheme://host)".to_owned(),
        },
        Err(_) => "(not shown: not a URI)".to_owned(),
    }
}

/// The origins a layer is scoped to; empty means every request.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Origins(Vec<Origin>);

impl Origins {
    pub(crate) fn push(&mut self, origin: Origin) {
        if !self.0.contains(&origin) {
            self.0.push(origin);
        }
    }

    /// Whether these origins scope a layer (it has some) and `target` is one of them.
    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn scopes(&self, target: &Target<'_>) -> bool {
        !self.0.is_empty() && self.allow(target)
    }

    /// Whether the layer is unscoped: it acts on every request.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a layer scoped to these origins acts on a request to `target`.
    #[inline]
    pub(crate) fn allow(&self, target: &Target<'_>) -> bool {
        self.0.is_empty() || self.0.iter().any(|o| o.matches(target))
    }
}

impl fmt::Debug for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("any")
        } else {
            f.debug_list().entries(&self.0).finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> Origin {
        match Origin::parse(s) {
            Ok(o) => o,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn matches(origin_str: &str, uri: &str) -> bool {
        let uri: Uri = uri.parse().expect("test URI");
        origin(origin_str).matches(&Target::from_uri(&uri))
    }

    #[test]
    fn default_ports_are_normalised() {
        assert!(matches("https://a.example", "https://a.example:443/x"));
        assert!(matches("https://a.example:443", "https://a.example/x"));
        assert!(matches("http://a.example", "http://a.example:80/"));
        assert!(!matches("https://a.example", "https://a.example:8443/"));
        assert!(!matches("https://a.example:8443", "https://a.example/"));
        assert!(matches(
            "http://127.0.0.1:3000",
            "http://127.0.0.1:3000/p?q"
        ));
    }

    #[test]
    fn scheme_matters() {
        assert!(!matches("https://a.example", "http://a.example/"));
        assert!(!matches("http://a.example", "https://a.example/"));
        // Same port, other scheme: still another origin.
        assert!(!matches("http://a.example:443", "https://a.example/"));
    }

    #[test]
    fn scheme_and_host_are_case_insensitive() {
        assert!(matches("HTTPS://A.Example", "https://a.example/"));
        assert!(matches("https://a.example", "HTTPS://A.EXAMPLE/"));
        assert!(!matches("https://a.example", "https://b.example/"));
        assert!(!matches("https://a.example", "https://a.example.evil.net/"));
        assert!(!matches("https://a.example", "https://sub.a.example/"));
    }

    #[test]
    fn userinfo_never_fools_the_host() {
        assert!(!matches(
            "https://api.example.com",
            "https://api.example.com@evil.net/"
        ));
        assert!(!matches(
            "https://api.example.com",
            "https://api.example.com:443@evil.net/"
        ));
        assert!(matches(
            "https://evil.net",
            "https://api.example.com@evil.net/"
        ));
        assert!(matches(
            "https://api.example.com",
            "https://user:pw@api.example.com/"
        ));
    }

    #[test]
    fn relative_uris_match_nothing() {
        assert!(!matches("https://a.example", "/path"));
        assert!(!matches("https://a.example", "*"));
        let uri: Uri = "/path".parse().expect("uri");
        assert!(!Origins::default()
            .0
            .iter()
            .any(|o| o.matches(&Target::from_uri(&uri))));
        let mut scoped = Origins::default();
        scoped.push(origin("https://a.example"));
        assert!(!scoped.allow(&Target::from_uri(&uri)));
        assert!(Origins::default().allow(&Target::from_uri(&uri)));
    }

    #[test]
    fn ipv6_hosts_compare_as_addresses() {
        assert!(matches("http://[::1]:8080", "http://[::1]:8080/"));
        assert!(matches(
            "http://[0:0:0:0:0:0:0:1]:8080",
            "http://[::1]:8080/"
        ));
        assert!(matches(
            "https://[2001:DB8::1]",
            "https://[2001:db8::1]:443/"
        ));
        assert!(!matches("http://[::1]:8080", "http://127.0.0.1:8080/"));
    }

    #[test]
    fn trailing_slash_is_accepted() {
        assert_eq!(origin("https://a.example/"), origin("https://a.example"));
        assert_eq!(
            origin("https://a.example:443/"),
            origin("https://A.example")
        );
        assert_eq!(
            origin("https://a.example").to_string(),
            "https://a.example:443"
        );
    }

    #[test]
    fn invalid_origins_are_errors_that_name_the_problem() {
        let cases = [
            ("https://a.example/v1", "path"),
            ("https://a.example/?k=1", "query"),
            ("https://a.example/#frag", "fragment"),
            ("https://user:pw@a.example", "userinfo"),
            ("ftp2://a.example", "default port"),
            ("a.example", "scheme://host"),
            ("/relative", "scheme://host"),
            ("", "URI"),
            ("https://a b", "URI"),
            ("https://a.example:65536", "out of range"),
            ("http://a.example:99999/", "out of range"),
            ("http://[::1]:70000", "out of range"),
        ];
        for (input, problem) in cases {
            let err = Origin::parse(input).expect_err(input);
            assert_eq!(err.kind(), ErrorKind::InvalidOrigin, "{input}");
            assert!(err.to_string().contains(problem), "{input}: {err}");
        }
        // A scheme without a default port is fine with an explicit one.
        assert!(Origin::parse("grpc://a.example:50051").is_ok());
        assert_eq!(origin("https://a.example:65535").port, 65535);
        assert_eq!(origin("http://[::1]:8080").port, 8080);
        // An empty port is the default one (RFC 3986).
        assert_eq!(origin("https://a.example:").port, 443);
    }

    #[test]
    fn errors_do_not_echo_secrets() {
        let err = Origin::parse("https://user:hunter2@a.example").expect_err("userinfo");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("a.example"), "{err}");
        let err = Origin::parse("https://a.example/?api_key=hunter2").expect_err("query");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = Origin::parse("Bearer hunter2").expect_err("garbage");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "127.255.255.255",
            "[::1]",
            "[0:0:0:0:0:0:0:1]",
            "[0000::0001]",
            "[::ffff:127.0.0.1]",
            "[::FFFF:7f00:1]",
            "[0:0:0:0:0:ffff:127.9.9.9]",
            "localhost",
            "LOCALHOST",
            "LocalHost",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        // Only what the contract lists: names under `.localhost` and `localhost.` go to DNS
        // on common resolvers, so they may be anywhere.
        for host in [
            "128.0.0.1",
            "10.0.0.1",
            "[::2]",
            "[::ffff:10.0.0.1]",
            "[::127.0.0.1]",
            "localhost.",
            "LOCALHOST.",
            "api.localhost",
            "api.localhost.",
            "a.b.LOCALHOST",
            "localhost.example",
            "notlocalhost",
            "example.com",
            "127.0.0.1.nip.io",
            "127.0.0.1.",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    /// `Authority::from_static` checks only up to a `/`, `?` or `#` and keeps the rest; http's
    /// `host()` then panics on some of them. The rules see no host: nothing panics, plain http
    /// is refused, no origin matches.
    #[test]
    fn an_unchecked_static_authority_names_no_host_and_never_panics() {
        let api = origin("https://api.example.com");
        for authority in [
            "a/@",
            "a/@[",
            "a?@",
            "x#@api.example.com",
            "api.example.com:443/",
        ] {
            for scheme in [http::uri::Scheme::HTTP, http::uri::Scheme::HTTPS] {
                let mut parts = http::uri::Parts::default();
                parts.scheme = Some(scheme.clone());
                parts.authority = Some(http::uri::Authority::from_static(authority));
                parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
                let uri = Uri::from_parts(parts).expect("uri");
                let target = Target::from_uri(&uri);
                assert_eq!(target.host(), None, "{authority}");
                assert_eq!(target.port(), None, "{authority}");
                assert_eq!(
                    target.is_plaintext_remote(),
                    scheme == http::uri::Scheme::HTTP
                );
                assert_eq!(
                    Target::uri_is_plaintext_remote(&uri),
                    scheme == http::uri::Scheme::HTTP
                );
                assert!(!api.matches(&target), "{authority}");
                assert!(!target.describe().contains('@'), "{}", target.describe());
                let _ = OriginId::of(&target);
                #[cfg(feature = "tower-http")]
                assert_eq!(SentTo::of(&uri).origin_id(), Some(OriginId::of(&target)));
            }
        }
    }

    #[cfg(feature = "tower-http")]
    #[test]
    fn sent_to_names_the_origin_the_request_went_to_copied_or_hashed() {
        let long_host = format!("https://{}.example.com:8443/x", "a".repeat(60));
        let uris = [
            "https://api.example.com/v1/items?q=1",
            "HTTPS://API.example.com:443/",
            "http://user:pw@127.0.0.1:8080/x",
            "http://[::1]:8080/",
            "http://127.0.0.1:8080@evil.net:8080/",
            // 48 bytes of scheme and authority: the longest copied.
            "https://abcdefghijklmnopqrstuvwxyz0123456789.example/",
            // 49: hashed at once.
            "https://abcdefghijklmnopqrstuvwxyz0123456789a.example/",
            long_host.as_str(),
            "/relative",
            "*",
        ];
        for uri in uris {
            let uri: Uri = uri.parse().expect("uri");
            let id = OriginId::of(&Target::from_uri(&uri));
            assert_eq!(SentTo::of(&uri).origin_id(), Some(id), "{uri}");
        }
        let a: Uri = "https://api.example.com/".parse().expect("uri");
        let b: Uri = "https://api.example.net/".parse().expect("uri");
        assert_ne!(
            SentTo::of(&a).origin_id(),
            Some(OriginId::of(&Target::from_uri(&b)))
        );
    }

    #[test]
    fn place_is_exact_and_matches_its_own_comparison() {
        let place = |uri: &str| {
            let uri: Uri = uri.parse().expect("uri");
            Place::of(&Target::from_uri(&uri))
        };
        let is = |p: &Place, uri: &str| {
            let uri: Uri = uri.parse().expect("uri");
            p.is(&Target::from_uri(&uri))
        };
        let id = |uri: &str| {
            let uri: Uri = uri.parse().expect("uri");
            OriginId::of(&Target::from_uri(&uri))
        };
        let a = place("http://127.0.0.1:8080/x?q");
        let same = [
            "http://127.0.0.1:8080/",
            "HTTP://127.0.0.1:8080/other",
            "http://user:pw@127.0.0.1:8080/",
        ];
        let other = [
            "http://localhost:8080/",
            "https://127.0.0.1:8080/",
            "http://127.0.0.1:8081/",
            "http://127.0.0.1/",
            "http://127.0.0.1:8080@evil.net:8080/",
            "/relative",
        ];
        for uri in same {
            assert!(is(&a, uri), "{uri}");
            assert!(place(uri) == a, "{uri}");
            assert_eq!(id(uri), id("http://127.0.0.1:8080/x?q"), "{uri}");
        }
        for uri in other {
            assert!(!is(&a, uri), "{uri}");
            assert!(place(uri) != a, "{uri}");
            assert_ne!(id(uri), id("http://127.0.0.1:8080/x?q"), "{uri}");
        }
        assert!(is(
            &place("https://API.example.com/"),
            "https://api.example.com:443/"
        ));
        assert!(is(&place("http://[::1]:80/"), "http://[0:0::1]/"));
        assert_eq!(id("http://[::1]:80/"), id("http://[0:0::1]/"));
        // Hosts longer than one hashing chunk (64 bytes), in any case.
        let long = |label: &str| id(&format!("https://{label}.example.com/"));
        assert_eq!(long(&"Ab".repeat(70)), long(&"aB".repeat(70)));
        assert_ne!(
            long(&"ab".repeat(70)),
            long(&format!("{}c", "ab".repeat(70)))
        );
        assert_ne!(long(&"ab".repeat(32)), long(&"ab".repeat(33)));
        assert_eq!(
            id("HTTPS://API.example.com/"),
            id("https://api.example.com:443/")
        );
        // A relative URI has no place but its own kind.
        assert!(is(&place("/a"), "/b"));
        // A name that looks like an address is still not that address.
        assert!(!is(&place("http://localhost/"), "http://127.0.0.1/"));
        assert_eq!(format!("{a:?}"), "http://127.0.0.1:8080");
    }

    #[test]
    fn plaintext_remote() {
        let check = |uri: &str| {
            let uri: Uri = uri.parse().expect("uri");
            Target::from_uri(&uri).is_plaintext_remote()
        };
        assert!(check("http://api.example.com/"));
        assert!(check("HTTP://api.example.com/"));
        assert!(!check("https://api.example.com/"));
        assert!(!check("http://127.0.0.1:8080/"));
        assert!(!check("http://localhost/"));
        assert!(!check("http://LocalHost:3000/"));
        assert!(!check("http://[::1]/"));
        assert!(!check("http://[::ffff:127.0.0.1]/"));
        assert!(check("http://api.localhost/"));
        assert!(check("http://localhost./"));
        // userinfo naming localhost does not make evil.net loopback
        assert!(check("http://localhost@evil.net/"));
        // no scheme: cannot be shown to be safe
        assert!(check("/relative"));
    }
}
