//! The merge rule: how session headers, a request's own headers and its [`HeaderOverrides`]
//! combine. This is the only implementation of it; the tower service and the
//! reqwest-middleware adapter both call [`SessionHeaders::apply`].

use std::fmt;

use http::header::Entry;
use http::{HeaderMap, HeaderName};

use crate::origin::{Origins, Target};
use crate::overrides::{is_always_sensitive, mark_credentials_sensitive, HeaderOverrides};

/// How a session header combines with the request's own values of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The request's values win; the session's are added only when the request has none.
    IfAbsent,
    /// The session's values replace the request's.
    Override,
    /// The session's values are added after the request's.
    Append,
}

/// Up to this many session names the common case is merged in place (one lookup per name, no
/// allocation unless the request's map must grow). Above it, cloning the prebuilt map, which
/// copies the stored hashes instead of looking every name up, is cheaper: by callgrind the
/// clone costs about 1,600 instructions and each in-place name about 500.
const IN_PLACE_MAX_NAMES: usize = 4;

/// A layer's session headers, ready to merge.
#[derive(Clone)]
pub(crate) struct SessionHeaders {
    /// Every session value, in order, with credentials marked sensitive.
    headers: HeaderMap,
    /// The policy of every name that is not if-absent (usually empty, so most requests skip
    /// the lookup entirely).
    special: HeaderMap<Policy>,
    origins: Origins,
}

impl SessionHeaders {
    pub(crate) fn new(headers: HeaderMap, special: HeaderMap<Policy>, origins: Origins) -> Self {
        Self {
            headers,
            special,
            origins,
        }
    }

    fn policy(&self, name: &HeaderName) -> Policy {
        if self.special.is_empty() {
            return Policy::IfAbsent;
        }
        self.special.get(name).copied().unwrap_or(Policy::IfAbsent)
    }

    /// Merge the session headers into a request's `headers`, as the crate docs' merge table
    /// says. Requests to an origin outside the layer's scope are left untouched.
    pub(crate) fn apply(
        &self,
        target: Target<'_>,
        headers: &mut HeaderMap,
        overrides: Option<&HeaderOverrides>,
    ) {
        if !self.origins.allow(&target) {
            return;
        }
        let overrides = overrides.filter(|o| o.affects_session());
        match overrides {
            Some(o) if o.remove_all => {
                mark_credentials_sensitive(headers);
                apply_sets(headers, o);
            }
            None if self.special.is_empty() && self.headers.keys_len() <= IN_PLACE_MAX_NAMES => {
                mark_credentials_sensitive(headers);
                self.add_absent(headers);
            }
            _ => self.merge(headers, overrides),
        }
    }

    /// The common case with few session names, every one if-absent and no overrides: add the
    /// session values of each name the request lacks, in place. One lookup per session name
    /// (a hand-written `contains_key` then `insert` takes two), and the request's map grows at
    /// most once, so this allocates no more than that hand-written loop.
    fn add_absent(&self, headers: &mut HeaderMap) {
        // Only a hint: a map that cannot grow fails below as `insert` would.
        let _ = headers.try_reserve(self.headers.keys_len());
        // The name whose first session value was just added: its further values follow it.
        let mut added: Option<&HeaderName> = None;
        for (name, value) in &self.headers {
            if added.is_some_and(|prev| std::ptr::eq(prev, name)) {
                headers.append(name.clone(), value.clone());
                continue;
            }
            added = None;
            if let Entry::Vacant(slot) = headers.entry(name) {
                slot.insert(value.clone());
                added = Some(name);
            }
        }
    }

    /// Start from a clone of the prebuilt session map and lay the request's own headers over it.
    /// Cloning copies the stored hashes, so only the request's few names are hashed, instead of
    /// every session name being looked up and inserted into the request's map.
    fn merge(&self, headers: &mut HeaderMap, overrides: Option<&HeaderOverrides>) {
        let request = std::mem::take(headers);
        let mut out = self.headers.clone();
        if let Some(o) = overrides {
            for name in o.removed_names() {
                out.remove(name);
            }
        }
        // What to do with the values of the request's current header name.
        let mut current: Option<(HeaderName, Action)> = None;
        for (name, mut value) in request {
            let (name, action) = match name {
                Some(name) => {
                    if let Some((prev, Action::Before)) = current.take() {
                        self.append_session_values(&mut out, prev);
                    }
                    let action = self.action(&name, overrides);
                    if is_always_sensitive(&name) {
                        value.set_sensitive(true);
                    }
                    match action {
                        Action::Replace | Action::Before => {
                            out.insert(name.clone(), value);
                        }
                        Action::Drop => {}
                    }
                    current = Some((name, action));
                    continue;
                }
                None => match &current {
                    Some((name, action)) => (name, *action),
                    // `HeaderMap::into_iter` always names the first value of a run.
                    None => continue,
                },
            };
            if action != Action::Drop {
                if is_always_sensitive(name) {
                    value.set_sensitive(true);
                }
                out.append(name.clone(), value);
            }
        }
        if let Some((prev, Action::Before)) = current {
            self.append_session_values(&mut out, prev);
        }
        if let Some(o) = overrides {
            apply_sets(&mut out, o);
        }
        *headers = out;
    }

    fn action(&self, name: &HeaderName, overrides: Option<&HeaderOverrides>) -> Action {
        if let Some(o) = overrides {
            if o.set.contains_key(name) {
                // `set` replaces everything; it is applied last.
                return Action::Drop;
            }
            if o.removes(name) {
                // The session adds nothing (already removed above); the request's own stays.
                return Action::Replace;
            }
        }
        match self.policy(name) {
            Policy::IfAbsent => Action::Replace,
            Policy::Override => Action::Drop,
            Policy::Append => Action::Before,
        }
    }

    /// For an append-policy name, the request's values went in first; the session's follow.
    fn append_session_values(&self, out: &mut HeaderMap, name: HeaderName) {
        if let Entry::Occupied(mut entry) = out.entry(name) {
            for value in self.headers.get_all(entry.key()) {
                entry.append(value.clone());
            }
        }
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    /// The request's values replace whatever `out` holds for the name.
    Replace,
    /// The request's values are dropped.
    Drop,
    /// The request's values replace the session's, which are then appended after them.
    Before,
}

/// `set` entries make a header exactly their values, whatever was there.
fn apply_sets(headers: &mut HeaderMap, overrides: &HeaderOverrides) {
    for name in overrides.set.keys() {
        let mut values = overrides.set.get_all(name).iter();
        if let Some(first) = values.next() {
            headers.insert(name.clone(), first.clone());
            for value in values {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

impl fmt::Debug for SessionHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names and policies only: a session value may be an API key that was not marked
        // sensitive.
        struct Names<'a>(&'a SessionHeaders);
        impl fmt::Debug for Names<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut map = f.debug_map();
                for name in self.0.headers.keys() {
                    let count = self.0.headers.get_all(name).iter().count();
                    map.entry(
                        &name.as_str(),
                        &format_args!("{:?} x{count}", self.0.policy(name)),
                    );
                }
                map.finish()
            }
        }
        f.debug_struct("SessionHeaders")
            .field("headers", &Names(self))
            .field("origins", &self.origins)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use http::header::{ACCEPT, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, USER_AGENT};
    use http::{HeaderValue, Uri};

    use super::super::{DefaultHeadersBuilder, DefaultHeadersLayer};
    use super::*;

    const API: &str = "https://api.example.com/v1/items";

    fn build(b: DefaultHeadersBuilder) -> DefaultHeadersLayer {
        b.build().expect("valid session headers")
    }

    /// Apply `layer` to a request to `uri` with `request` headers and `overrides`.
    fn merged(
        layer: &DefaultHeadersLayer,
        uri: &str,
        request: &[(&str, &str)],
        overrides: Option<HeaderOverrides>,
    ) -> HeaderMap {
        let uri: Uri = uri.parse().expect("uri");
        let mut headers = HeaderMap::new();
        for (name, value) in request {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        layer
            .session
            .apply(Target::from_uri(&uri), &mut headers, overrides.as_ref());
        headers
    }

    fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    fn hv(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn if_absent_adds_every_session_value_in_order() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .header(ACCEPT, "application/json")
                .header(ACCEPT, "text/plain")
                .header(USER_AGENT, "app/1"),
        );
        let h = merged(&layer, API, &[("x-own", "1")], None);
        assert_eq!(values(&h, "accept"), ["application/json", "text/plain"]);
        assert_eq!(values(&h, "user-agent"), ["app/1"]);
        assert_eq!(values(&h, "x-own"), ["1"]);
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn if_absent_request_value_replaces_every_session_value() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .header(ACCEPT, "application/json")
                .header(ACCEPT, "text/plain"),
        );
        let h = merged(&layer, API, &[("accept", "text/csv")], None);
        assert_eq!(values(&h, "accept"), ["text/csv"]);
        // A multi-valued request header keeps all its values.
        let h = merged(&layer, API, &[("accept", "a/b"), ("accept", "c/d")], None);
        assert_eq!(values(&h, "accept"), ["a/b", "c/d"]);
    }

    #[test]
    fn override_replaces_the_request_values() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .override_header(USER_AGENT, "app/1")
                .override_header(USER_AGENT, "app/1-extra"),
        );
        let h = merged(
            &layer,
            API,
            &[("user-agent", "curl"), ("user-agent", "other"), ("x", "y")],
            None,
        );
        assert_eq!(values(&h, "user-agent"), ["app/1", "app/1-extra"]);
        assert_eq!(values(&h, "x"), ["y"]);
        let h = merged(&layer, API, &[], None);
        assert_eq!(values(&h, "user-agent"), ["app/1", "app/1-extra"]);
    }

    #[test]
    fn append_goes_after_the_request_values() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .append_header("x-tags", "s1")
                .append_header("x-tags", "s2"),
        );
        let h = merged(&layer, API, &[("x-tags", "r1"), ("x-tags", "r2")], None);
        assert_eq!(values(&h, "x-tags"), ["r1", "r2", "s1", "s2"]);
        let h = merged(&layer, API, &[], None);
        assert_eq!(values(&h, "x-tags"), ["s1", "s2"]);
    }

    #[test]
    fn mixed_policies_in_one_request() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .header(ACCEPT, "application/json")
                .override_header(USER_AGENT, "app/1")
                .append_header("x-tags", "s")
                .header("x-absent", "a"),
        );
        let h = merged(
            &layer,
            API,
            &[
                ("x-tags", "r"),
                ("accept", "text/csv"),
                ("user-agent", "curl"),
                ("x-own", "o"),
            ],
            None,
        );
        assert_eq!(values(&h, "accept"), ["text/csv"]);
        assert_eq!(values(&h, "user-agent"), ["app/1"]);
        assert_eq!(values(&h, "x-tags"), ["r", "s"]);
        assert_eq!(values(&h, "x-absent"), ["a"]);
        assert_eq!(values(&h, "x-own"), ["o"]);
        assert_eq!(h.len(), 6);
    }

    #[test]
    fn the_last_policy_for_a_name_applies_to_all_its_values() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .header("x", "1")
                .override_header("x", "2"),
        );
        let h = merged(&layer, API, &[("x", "r")], None);
        assert_eq!(values(&h, "x"), ["1", "2"]);
        let layer = build(
            DefaultHeadersLayer::builder()
                .override_header("x", "1")
                .header("x", "2"),
        );
        let h = merged(&layer, API, &[("x", "r")], None);
        assert_eq!(values(&h, "x"), ["r"]);
    }

    #[test]
    fn remove_drops_the_session_value_and_keeps_the_request_own() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .header(USER_AGENT, "app/1")
                .override_header(ACCEPT, "application/json")
                .append_header("x-tags", "s")
                .header("x-keep", "k"),
        );
        let o = HeaderOverrides::new()
            .remove(USER_AGENT)
            .remove(ACCEPT)
            .remove(HeaderName::from_static("x-tags"));
        let h = merged(&layer, API, &[("accept", "text/csv")], Some(o.clone()));
        assert!(h.get(USER_AGENT).is_none());
        // Override policy, but removed: the request's own value stays.
        assert_eq!(values(&h, "accept"), ["text/csv"]);
        assert!(h.get("x-tags").is_none());
        assert_eq!(values(&h, "x-keep"), ["k"]);
        let h = merged(&layer, API, &[("x-tags", "r")], Some(o));
        assert_eq!(values(&h, "x-tags"), ["r"]);
    }

    #[test]
    fn remove_all_adds_nothing_but_keeps_request_headers_and_sets() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .header(USER_AGENT, "app/1")
                .override_header(ACCEPT, "application/json")
                .header(AUTHORIZATION, "Bearer session"),
        );
        let o = HeaderOverrides::new()
            .remove_all()
            .set(HeaderName::from_static("x-set"), hv("v"));
        let h = merged(&layer, API, &[("accept", "text/csv")], Some(o));
        assert!(h.get(USER_AGENT).is_none());
        assert!(h.get(AUTHORIZATION).is_none());
        assert_eq!(values(&h, "accept"), ["text/csv"]);
        assert_eq!(values(&h, "x-set"), ["v"]);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn set_is_exactly_its_values() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .header(ACCEPT, "application/json")
                .append_header("x-tags", "s"),
        );
        let o = HeaderOverrides::new()
            .set(ACCEPT, hv("text/csv"))
            .set(ACCEPT, hv("text/plain"))
            .set(HeaderName::from_static("x-tags"), hv("only"));
        let h = merged(&layer, API, &[("accept", "a/b"), ("x-tags", "r")], Some(o));
        assert_eq!(values(&h, "accept"), ["text/csv", "text/plain"]);
        assert_eq!(values(&h, "x-tags"), ["only"]);
    }

    #[test]
    fn set_beats_remove_whatever_the_order() {
        let layer = build(DefaultHeadersLayer::builder().header(ACCEPT, "application/json"));
        for o in [
            HeaderOverrides::new()
                .remove(ACCEPT)
                .set(ACCEPT, hv("text/csv")),
            HeaderOverrides::new()
                .set(ACCEPT, hv("text/csv"))
                .remove(ACCEPT),
            HeaderOverrides::new()
                .remove_all()
                .set(ACCEPT, hv("text/csv")),
            HeaderOverrides::new()
                .set(ACCEPT, hv("text/csv"))
                .remove_all(),
        ] {
            let h = merged(&layer, API, &[("accept", "a/b")], Some(o));
            assert_eq!(values(&h, "accept"), ["text/csv"]);
        }
    }

    #[test]
    fn set_applies_to_names_the_session_lacks() {
        let layer = build(DefaultHeadersLayer::builder().header(ACCEPT, "application/json"));
        let o = HeaderOverrides::new().set(HeaderName::from_static("x-request-id"), hv("42"));
        let h = merged(&layer, API, &[("x-request-id", "1")], Some(o));
        assert_eq!(values(&h, "x-request-id"), ["42"]);
        assert_eq!(values(&h, "accept"), ["application/json"]);
    }

    #[test]
    fn names_the_session_lacks_are_left_alone() {
        let layer = build(DefaultHeadersLayer::builder().header(ACCEPT, "application/json"));
        let h = merged(
            &layer,
            API,
            &[("x-a", "1"), ("x-a", "2"), ("x-b", "3")],
            None,
        );
        assert_eq!(values(&h, "x-a"), ["1", "2"]);
        assert_eq!(values(&h, "x-b"), ["3"]);
        // An empty session changes nothing at all.
        let empty = DefaultHeadersLayer::new(HeaderMap::new());
        let h = merged(&empty, API, &[("x-a", "1"), ("x-a", "2")], None);
        assert_eq!(values(&h, "x-a"), ["1", "2"]);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn bearer_token_alone_does_not_change_session_headers() {
        let layer = build(DefaultHeadersLayer::builder().header(ACCEPT, "application/json"));
        let token = crate::BearerToken::new("t").expect("valid");
        let h = merged(
            &layer,
            API,
            &[],
            Some(HeaderOverrides::new().bearer_token(token)),
        );
        assert_eq!(values(&h, "accept"), ["application/json"]);
        assert!(h.get(AUTHORIZATION).is_none());
    }

    #[test]
    fn other_origins_pass_untouched_overrides_included() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .header("x-api-key", "k")
                .origin("https://api.example.com"),
        );
        let o = HeaderOverrides::new().set(HeaderName::from_static("x-set"), hv("v"));
        for uri in [
            "https://other.example.com/",
            "http://api.example.com/",
            "https://api.example.com:8443/",
            "https://api.example.com@evil.net/",
            "/relative",
        ] {
            let h = merged(&layer, uri, &[("x-own", "1")], Some(o.clone()));
            assert_eq!(h.len(), 1, "{uri}: {h:?}");
        }
        let h = merged(&layer, "https://API.example.com:443/x", &[], Some(o));
        assert_eq!(values(&h, "x-api-key"), ["k"]);
        assert_eq!(values(&h, "x-set"), ["v"]);
    }

    #[test]
    fn credentials_are_always_sensitive() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .header(AUTHORIZATION, "Basic abc")
                .override_header(PROXY_AUTHORIZATION, "Basic def")
                .append_header(COOKIE, "a=b")
                .sensitive_header("x-api-key", "k")
                .header(ACCEPT, "*/*"),
        );
        let h = merged(&layer, API, &[], None);
        for name in [
            "authorization",
            "proxy-authorization",
            "cookie",
            "x-api-key",
        ] {
            assert!(h[name].is_sensitive(), "{name}");
        }
        assert!(!h[ACCEPT].is_sensitive());

        let mut map = HeaderMap::new();
        map.insert(COOKIE, hv("a=b"));
        map.insert(AUTHORIZATION, hv("Bearer x"));
        let layer = DefaultHeadersLayer::new(map);
        let h = merged(&layer, API, &[], None);
        assert!(h[COOKIE].is_sensitive() && h[AUTHORIZATION].is_sensitive());
    }
}
