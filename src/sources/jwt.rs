//! Reading (not verifying) the `exp` claim of a JWT, so that a token file holding one is not
//! used past its expiry.
//!
//! Two small, self-contained readers, instead of a base64 and a JSON dependency in the core:
//! a base64url decoder (RFC 4648 section 5) and a JSON reader that validates the whole claims
//! set (RFC 8259) and returns its top-level `exp` member. Both are total: any input gives an
//! answer and never a panic; anything malformed gives `None`, and the token is then treated as
//! opaque. The JSON reader is checked against `serde_json` by property tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nesting deeper than this is treated as malformed (no recursion without a bound).
const MAX_DEPTH: usize = 64;

/// When `token` expires, if it is a JWT, and whether it is a whole one.
///
/// A token whose first dot-separated part is the base64url encoding of a JSON object with an
/// `alg` member (a JOSE header, RFC 7515 section 4) is a JWT, and must be a whole one:
/// exactly three parts (JWS compact serialisation), the second the base64url encoding of a
/// JSON object (the claims), the third empty (`alg: none`) or base64url (a signature). A JWT
/// that is not whole (most often a file read while it was being written) is `Err`, with the
/// problem. A JWE (a JOSE header with `enc` too, and five parts) is a whole token, with no
/// expiry read. Any other token is opaque: `Ok` with the [`expiry`] of its three parts, if
/// it has them (as before this check existed).
///
/// Only a cut that leaves broken claims or signature, or fewer than three parts, is caught: a
/// file cut inside its JOSE header (no longer a JSON object: opaque), just after its second
/// dot (an empty signature) or inside its signature (still base64url) reads as a whole
/// token.
pub(crate) fn check(token: &str) -> Result<Option<SystemTime>, &'static str> {
    let parts: Vec<&str> = token.split('.').collect();
    let header = decode_base64url(parts.first().copied().unwrap_or_default())
        .and_then(|header| top_level_names(&header));
    let Some(names) = header.filter(|names| names.iter().any(|name| name == "alg")) else {
        return Ok(expiry(token));
    };
    if names.iter().any(|name| name == "enc") && parts.len() == 5 {
        return Ok(None);
    }
    let [_header, claims, signature] = parts[..] else {
        return Err(
            "it holds a JWT (its first part is a JOSE header) that does not have three \
                    parts: was it read while being written?",
        );
    };
    let whole = decode_base64url(claims)
        .and_then(|claims| claims_exp(&claims))
        .is_some();
    if !whole {
        return Err(
            "it holds a JWT whose claims are not a base64url-encoded JSON object: was \
                    it read while being written?",
        );
    }
    if !signature.is_empty() && decode_base64url(signature).is_none() {
        return Err(
            "it holds a JWT whose signature is not base64url: was it read while being \
                    written?",
        );
    }
    Ok(expiry(token))
}

/// When a JWS compact-serialised JWT (`header.payload.signature`) expires, by its `exp` claim
/// (RFC 7519 section 4.1.4), read without verifying anything. `None` if `token` is not such a
/// JWT or has no numeric `exp`. An `exp` too large for `SystemTime` is `None` (no expiry).
pub(crate) fn expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None; // JWE (five parts) or something else
    }
    let claims = decode_base64url(payload)?;
    let exp = exp_claim(&claims)?;
    if exp <= 0.0 {
        return Some(UNIX_EPOCH);
    }
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(exp).ok()?)
}

/// Decode unpadded (or padded) base64url. `None` for any other character or a length that no
/// encoding has.
pub(crate) fn decode_base64url(s: &str) -> Option<Vec<u8>> {
    let s = s
        .strip_suffix("==")
        .or_else(|| s.strip_suffix('='))
        .unwrap_or(s);
    if s.is_empty() || s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The top-level `exp` member of the JSON object `json`, if `json` is one valid JSON object
/// and the member is a number. With duplicate names the last one counts (as RFC 7519 allows
/// parsers to do, and as ECMAScript does).
pub(crate) fn exp_claim(json: &[u8]) -> Option<f64> {
    claims_exp(json)?
}

/// [`exp_claim`], telling a JSON object without a numeric `exp` (`Some(None)`) from anything
/// that is not one JSON object (`None`).
#[allow(clippy::option_option)]
fn claims_exp(json: &[u8]) -> Option<Option<f64>> {
    let text = std::str::from_utf8(json).ok()?;
    let mut reader = Reader {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let exp = reader.top_level_exp()?;
    reader.skip_whitespace();
    (reader.pos == reader.bytes.len()).then_some(exp)
}

/// The names of the top-level members of `json`, if it is one JSON object.
fn top_level_names(json: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(json).ok()?;
    let mut reader = Reader {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let mut names = Vec::new();
    reader.skip_whitespace();
    reader.expect(b'{')?;
    reader.skip_whitespace();
    if reader.peek() == Some(b'}') {
        reader.pos += 1;
    } else {
        loop {
            reader.skip_whitespace();
            names.push(reader.string()?);
            reader.skip_whitespace();
            reader.expect(b':')?;
            reader.skip_whitespace();
            reader.value(1)?;
            reader.skip_whitespace();
            match reader.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    reader.skip_whitespace();
    (reader.pos == reader.bytes.len()).then_some(names)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// The whole top-level object; `Some(None)` if it is valid but has no numeric `exp`.
    fn top_level_exp(&mut self) -> Option<Option<f64>> {
        self.skip_whitespace();
        self.expect(b'{')?;
        let mut exp = None;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(None);
        }
        loop {
            self.skip_whitespace();
            let is_exp = self.string()? == "exp";
            self.skip_whitespace();
            self.expect(b':')?;
            self.skip_whitespace();
            if is_exp {
                exp = match self.peek()? {
                    b'-' | b'0'..=b'9' => Some(self.number()?),
                    _ => {
                        self.value(1)?;
                        None
                    }
                };
            } else {
                self.value(1)?;
            }
            self.skip_whitespace();
            match self.next()? {
                b',' => {}
                b'}' => return Some(exp),
                _ => return None,
            }
        }
    }

    /// Skip one value at nesting `depth`.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'[' => {
                self.pos += 1;
                self.skip_whitespace();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.skip_whitespace();
                    self.value(depth + 1)?;
                    self.skip_whitespace();
                    match self.next()? {
                        b',' => {}
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'{' => {
                self.pos += 1;
                self.skip_whitespace();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.skip_whitespace();
                    self.string()?;
                    self.skip_whitespace();
                    self.expect(b':')?;
                    self.skip_whitespace();
                    self.value(depth + 1)?;
                    self.skip_whitespace();
                    match self.next()? {
                        b',' => {}
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(word.len())?;
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// A string, decoded (escapes included). The input is known to be UTF-8.
    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let c = match self.next()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return None,
                b => out.push(b),
            }
        }
    }

    /// After `\u`: four hex digits, and a second `\uXXXX` for a surrogate pair. A lone
    /// surrogate is malformed (as `serde_json` has it).
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        match first {
            0xD800..=0xDBFF => {
                self.expect(b'\\')?;
                self.expect(b'u')?;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return None;
                }
                char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
            }
            0xDC00..=0xDFFF => None,
            _ => char::from_u32(first),
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut v = 0;
        for _ in 0..4 {
            let d = char::from(self.next()?).to_digit(16)?;
            v = v * 16 + d;
        }
        Some(v)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, as an `f64`.
    fn number(&mut self) -> Option<f64> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.one_or_more_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.one_or_more_digits()?;
        }
        let lexeme = std::str::from_utf8(self.bytes.get(start..self.pos)?).ok()?;
        // Out of range (`1e400`) is malformed, as `serde_json` has it.
        lexeme.parse().ok().filter(|n: &f64| n.is_finite())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn one_or_more_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }
}

/// base64url without padding, for tests (the reverse of [`decode_base64url`]).
#[cfg(test)]
pub(super) fn encode_base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn serde_exp(json: &str) -> Option<f64> {
        let value: Value = serde_json::from_str(json).ok()?;
        value.as_object()?.get("exp")?.as_f64()
    }

    #[test]
    fn base64url_decodes_with_and_without_padding() {
        assert_eq!(decode_base64url("aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64url("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64url("_-8").as_deref(), Some(&[0xff, 0xef][..]));
        for bad in ["", "a", "aGVsb+8", "aGV/bG8", "aG Vs", "aGVsbG8==="] {
            assert_eq!(decode_base64url(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn exp_is_the_top_level_member_only() {
        let cases: &[(&str, Option<f64>)] = &[
            (r#"{"exp":1700000000}"#, Some(1.7e9)),
            (
                r#" { "sub" : "a", "exp" : 1700000000.5 } "#,
                Some(1_700_000_000.5),
            ),
            (r#"{"exp":1.7e9}"#, Some(1.7e9)),
            (r#"{"\u0065xp":5}"#, Some(5.0)),
            (r#"{"exp":1,"exp":2}"#, Some(2.0)),
            (r#"{"exp":"1700000000"}"#, None),
            (r#"{"act":{"exp":5}}"#, None),
            (r#"{"note":"\"exp\":5"}"#, None),
            (r#"{"a":[{"exp":5}],"b":"exp"}"#, None),
            (r#"{"exp":5,}"#, None),
            (r#"{"exp":5} x"#, None),
            (r#"{"exp":05}"#, None),
            (r#"{"exp":5."#, None),
            (r#"{"exp":-}"#, None),
            (r#"{"exp":1e400}"#, None),
            (r#"{"a":1e400,"exp":5}"#, None),
            (r#"{"exp":5"#, None),
            (r#"["exp",5]"#, None),
            (r#"{"a":"\ud800","exp":5}"#, None),
            (r#"{"a":"tab	in string","exp":5}"#, None),
            ("", None),
        ];
        for (json, exp) in cases {
            assert_eq!(exp_claim(json.as_bytes()), *exp, "{json}");
            assert_eq!(serde_exp(json), *exp, "serde_json agrees on {json}");
        }
    }

    #[test]
    fn deep_nesting_is_malformed_not_a_stack_overflow() {
        let deep = format!(
            r#"{{"a":{}1{},"exp":5}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(exp_claim(deep.as_bytes()), None);
        let ok = format!(r#"{{"a":{}1{},"exp":5}}"#, "[".repeat(10), "]".repeat(10));
        assert_eq!(exp_claim(ok.as_bytes()), Some(5.0));
    }

    #[test]
    fn expiry_of_a_jwt_and_of_anything_else() {
        let jwt = |claims: &str| {
            format!(
                "{}.{}.c2ln",
                encode_base64url(br#"{"alg":"RS256"}"#),
                encode_base64url(claims.as_bytes())
            )
        };
        assert_eq!(
            expiry(&jwt(
                r#"{"sub":"system:serviceaccount:a:b","exp":1700000000}"#
            )),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(expiry(&jwt(r#"{"sub":"x"}"#)), None);
        assert_eq!(expiry(&jwt(r#"{"exp":-5}"#)), Some(UNIX_EPOCH));
        assert_eq!(expiry(&jwt(r#"{"exp":1e300}"#)), None);
        assert_eq!(expiry("opaque-token"), None);
        assert_eq!(expiry("a.b"), None);
        assert_eq!(expiry("a.b.c.d.e"), None);
        assert_eq!(
            expiry(&format!("x.{}.y", encode_base64url(b"not json"))),
            None
        );
    }

    #[test]
    fn a_jwt_must_be_whole_and_anything_else_is_opaque() {
        let header = encode_base64url(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = encode_base64url(br#"{"sub":"x","exp":1700000000}"#);
        let whole = format!("{header}.{claims}.c2ln");
        assert_eq!(
            check(&whole),
            Ok(Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)))
        );
        for cut in 1..whole.len() {
            let prefix = &whole[..cut];
            let whole_looking = cut < header.len()
                || (cut > header.len() + claims.len() + 1
                    && cut != header.len() + claims.len() + 3);
            assert_eq!(check(prefix).is_ok(), whole_looking, "{prefix}");
        }
        assert!(check(&format!("{header}.{claims}.")).is_ok(), "alg none");
        let no_alg = encode_base64url(br#"{"typ":"JWT"}"#);
        assert_eq!(check(&format!("{no_alg}.x")), Ok(None));
        assert_eq!(check("abc.def"), Ok(None));
        assert_eq!(check("opaque"), Ok(None));
        let jwe = encode_base64url(br#"{"alg":"dir","enc":"A128GCM"}"#);
        assert_eq!(check(&format!("{jwe}..aXY.Y2lwaGVy.dGFn")), Ok(None));
        assert!(check(&format!("{jwe}..aXY")).is_err());
        assert_eq!(
            top_level_names(br#" {"a":{"alg":1},"b":[]} "#),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(top_level_names(b"{}"), Some(vec![]));
        assert_eq!(top_level_names(br#"{"a":1"#), None);
        assert_eq!(top_level_names(br#"{"a":1} x"#), None);
    }

    /// Equal, or within a relative 1e-12: `serde_json` (without its `float_roundtrip`
    /// feature) may round the last bits of a long decimal differently from `str::parse`,
    /// which rounds correctly. A second either way is all `exp` needs.
    fn same(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= a.abs().max(b.abs()) * 1e-12,
            (a, b) => a == b,
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "(exp|[a-z\"\\\\/\u{0}-\u{1f}\u{e9}\u{1f600}]{0,8})".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("(exp|[a-z]{0,3})", inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json_on_any_json(value in json_value(), pretty in any::<bool>()) {
            let json = if pretty {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            }.expect("serialises");
            let (ours, theirs) = (exp_claim(json.as_bytes()), serde_exp(&json));
            prop_assert!(same(ours, theirs), "{:?} {:?} {}", ours, theirs, json);
        }

        #[test]
        fn agrees_with_serde_json_on_mangled_json(value in json_value(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut json = serde_json::to_vec(&value).expect("serialises");
            if !json.is_empty() {
                let i = cut.index(json.len());
                json[i] = byte;
            }
            let theirs = std::str::from_utf8(&json).ok().and_then(serde_exp);
            let ours = exp_claim(&json);
            prop_assert!(same(ours, theirs), "{:?} {:?}", ours, theirs);
        }

        #[test]
        fn any_bytes_give_an_answer(bytes in prop::collection::vec(any::<u8>(), 0..256), s in "\\PC{0,64}") {
            let _ = exp_claim(&bytes);
            let _ = decode_base64url(&s);
            let _ = expiry(&s);
        }

        #[test]
        fn base64url_round_trips(bytes in prop::collection::vec(any::<u8>(), 1..128)) {
            prop_assert_eq!(decode_base64url(&encode_base64url(&bytes)), Some(bytes));
        }
    }
}
