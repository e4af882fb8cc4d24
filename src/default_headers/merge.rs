//! The merge rule: how session headers, a request's own headers and its [`HeaderOverrides`]
//! combine. This is the only implementation of it; the tower service and the
//! reqwest-middleware adapter both call [`SessionHeaders::apply`].

use std::fmt;

use http::header::{Entry, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::computed::{Computed, RequestHead, RequestLine};
use crate::origin::Origins;
#[cfg(feature = "reqwest-middleware")]
use crate::origin::Target;
use crate::overrides::{is_always_sensitive, mark_credentials_sensitive, Applied, HeaderOverrides};

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

/// The clone-based merge builds a new map of at most this many names (the request's, the
/// session's and the overrides' together). `http::HeaderMap` refuses to grow past 32,768 slots;
/// a map of fewer than 6,554 names never asks to (it doubles early only when it is a fifth
/// full), so building `out` cannot fail and no request header can be lost on the way. Larger
/// requests are merged in their own map instead ([`Values::merge_in_place`]).
const CLONE_MAX_NAMES: usize = 4096;

/// A layer's session headers, ready to merge. One value is one version of a live session:
/// `SessionHandle::update` replaces it whole, never edits it.
#[derive(Clone)]
pub(crate) struct SessionHeaders {
    /// Every static session value, in order, with credentials marked sensitive.
    headers: HeaderMap,
    /// The functions of every computed name, in order (usually empty, so most requests skip
    /// them entirely). A name is either here or in `headers`, never both.
    computed: HeaderMap<Computed>,
    /// The policy of every name that is not if-absent (usually empty, so most requests skip
    /// the lookup entirely).
    special: HeaderMap<Policy>,
    origins: Origins,
    /// Whether the static values define `Cookie`, whose values are sent as one field.
    defines_cookie: bool,
}

impl SessionHeaders {
    pub(crate) fn new(
        headers: HeaderMap,
        computed: HeaderMap<Computed>,
        special: HeaderMap<Policy>,
        origins: Origins,
    ) -> Self {
        Self {
            defines_cookie: headers.contains_key(COOKIE),
            headers,
            computed,
            special,
            origins,
        }
    }

    /// Whether the layer is scoped to origins and `target` is one of them.
    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn scopes(&self, target: &Target<'_>) -> bool {
        self.origins.scopes(target)
    }

    /// The policy of `name` (if-absent for names the session does not define).
    pub(crate) fn policy(&self, name: &HeaderName) -> Policy {
        self.values().policy(name)
    }

    /// The static values, as every request sees them.
    #[inline]
    fn values(&self) -> Values<'_> {
        Values {
            headers: &self.headers,
            special: &self.special,
            defines_cookie: self.defines_cookie,
        }
    }

    /// Merge the session headers into a request's `headers`, as the crate docs' merge table
    /// says. Requests to an origin outside the layer's scope are left untouched.
    ///
    /// At `http::HeaderMap`'s capacity nothing panics: a session or override value that does not
    /// fit is not added, and the request's own headers are kept (but for names the rule replaces).
    pub(crate) fn apply(
        &self,
        line: RequestLine<'_>,
        headers: &mut HeaderMap,
        overrides: Option<&HeaderOverrides>,
    ) {
        let target = line.target();
        // Seen first, the overrides' credentials are bound here, whether or not this layer acts.
        let overrides = overrides.map(|o| o.at(&target));
        if !self.origins.allow(&target) {
            return;
        }
        let overrides = overrides.filter(Applied::affects_session);
        // `remove_all` uses no session value, so no function is called for it.
        if self.computed.is_empty() || overrides.is_some_and(|o| o.remove_all()) {
            self.values().merge(headers, overrides);
        } else {
            self.apply_computed(line, headers, overrides);
        }
    }

    /// [`apply`](Self::apply) for a session with computed values, kept out of the static
    /// path so that the static path stays as compact as it was.
    #[inline(never)]
    fn apply_computed(
        &self,
        line: RequestLine<'_>,
        headers: &mut HeaderMap,
        overrides: Option<Applied<'_>>,
    ) {
        let session = self.with_computed(&line.head(headers), overrides);
        Values {
            headers: &session,
            special: &self.special,
            defines_cookie: session.contains_key(COOKIE),
        }
        .merge(headers, overrides);
    }

    /// This request's session values: the static ones and each computed one the merge will
    /// use. A function is not called when its value could not be used: the overrides set or
    /// remove its name, or the policy is if-absent and the request has the name. A function
    /// that returns `None` adds nothing, and the name is then left to the request.
    fn with_computed(&self, head: &RequestHead<'_>, overrides: Option<Applied<'_>>) -> HeaderMap {
        let mut session = self.headers.clone();
        for name in self.computed.keys() {
            if overrides.is_some_and(|o| o.sets(name) || o.removes(name))
                || (self.policy(name) == Policy::IfAbsent && head.headers().contains_key(name))
            {
                continue;
            }
            for computed in self.computed.get_all(name) {
                if let Some(value) = computed.value(name, head) {
                    // The builder kept every name within capacity; never assumed, though.
                    let _ = session.try_append(name.clone(), value);
                }
            }
        }
        session
    }

    /// The static values, every one in order (sensitive values stay marked).
    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The functions of the computed values.
    pub(crate) fn computed(&self) -> &HeaderMap<Computed> {
        &self.computed
    }

    pub(crate) fn origins(&self) -> &Origins {
        &self.origins
    }
}

/// The session values one request gets: the static ones, or for a session with computed
/// values, those and this request's computed ones. The merge rule proper.
#[derive(Clone, Copy)]
struct Values<'a> {
    headers: &'a HeaderMap,
    special: &'a HeaderMap<Policy>,
    /// Whether `headers` defines `Cookie`, whose values are sent as one field.
    defines_cookie: bool,
}

impl Values<'_> {
    fn policy(self, name: &HeaderName) -> Policy {
        if self.special.is_empty() {
            return Policy::IfAbsent;
        }
        self.special.get(name).copied().unwrap_or(Policy::IfAbsent)
    }

    /// Merge these values into a request's `headers` (the request is inside the layer's scope).
    // Inlined into both callers: with one shared out-of-line copy the static path measured
    // ~15 instructions per request more (callgrind, `default_headers/8`).
    #[inline(always)]
    fn merge(self, headers: &mut HeaderMap, overrides: Option<Applied<'_>>) {
        let cookie = self.defines_cookie || overrides.is_some_and(|o| o.sets(&COOKIE));
        let request_had_cookie = cookie && headers.contains_key(COOKIE);
        match overrides {
            Some(o) if o.remove_all() => {
                mark_credentials_sensitive(headers);
                apply_sets(headers, o);
            }
            None if self.special.is_empty() && self.headers.keys_len() <= IN_PLACE_MAX_NAMES => {
                mark_credentials_sensitive(headers);
                self.add_absent(headers);
            }
            _ if headers.keys_len()
                + self.headers.keys_len()
                + overrides.map_or(0, |o| o.set_names().count())
                > CLONE_MAX_NAMES =>
            {
                self.merge_in_place(headers, overrides);
            }
            _ => self.merge_clone(headers, overrides),
        }
        if cookie && self.adds_cookie(request_had_cookie, overrides) {
            join_cookies(headers);
        }
    }

    /// The common case with few session names, every one if-absent and no overrides: add the
    /// session values of each name the request lacks, in place. One lookup per session name
    /// (a hand-written `contains_key` then `insert` takes two), and the request's map grows at
    /// most once, so this allocates no more than that hand-written loop.
    fn add_absent(self, headers: &mut HeaderMap) {
        // Only a hint: a map that cannot grow refuses the values below one by one.
        let _ = headers.try_reserve(self.headers.keys_len());
        // The name whose first session value was just added: its further values follow it.
        let mut added: Option<&HeaderName> = None;
        for (name, value) in self.headers {
            if added.is_some_and(|prev| std::ptr::eq(prev, name)) {
                // At capacity the value is not added.
                let _ = headers.try_append(name.clone(), value.clone());
                continue;
            }
            added = None;
            // `Err` only at capacity: the request is full, the session value is not added.
            if let Ok(Entry::Vacant(slot)) = headers.try_entry(name) {
                if slot.try_insert(value.clone()).is_ok() {
                    added = Some(name);
                }
            }
        }
    }

    /// Start from a clone of the prebuilt session map and lay the request's own headers over it.
    /// Cloning copies the stored hashes, so only the request's few names are hashed, instead of
    /// every session name being looked up and inserted into the request's map.
    ///
    /// Only for requests of at most [`CLONE_MAX_NAMES`] names in all, for which every insert
    /// into `out` succeeds; the `try_` calls keep even the impossible case free of panics.
    fn merge_clone(self, headers: &mut HeaderMap, overrides: Option<Applied<'_>>) {
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
                            let _ = out.try_insert(name.clone(), value);
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
                let _ = out.try_append(name.clone(), value);
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

    /// The same rule as [`merge_clone`](Self::merge_clone), worked in the request's own map,
    /// for requests too large to copy safely: nothing of the request is ever lost to a full
    /// map, and a session value that does not fit is not added. Slower (every session name is looked up),
    /// and used only past [`CLONE_MAX_NAMES`].
    fn merge_in_place(self, headers: &mut HeaderMap, overrides: Option<Applied<'_>>) {
        mark_credentials_sensitive(headers);
        for name in self.headers.keys() {
            // 1. and 2.: `set` is applied last; a removed name gets nothing from the session.
            if overrides.is_some_and(|o| o.sets(name) || o.removes(name)) {
                continue;
            }
            match self.policy(name) {
                // 3. The request's own values win.
                Policy::IfAbsent if headers.contains_key(name) => continue,
                Policy::IfAbsent | Policy::Append => {}
                // 4. The session's values replace the request's.
                Policy::Override => {
                    headers.remove(name);
                }
            }
            // 3., 4. and 5.: the session's values go after whatever the request keeps.
            for value in self.headers.get_all(name) {
                let _ = headers.try_append(name.clone(), value.clone());
            }
        }
        if let Some(o) = overrides {
            apply_sets(headers, o);
        }
    }

    fn action(self, name: &HeaderName, overrides: Option<Applied<'_>>) -> Action {
        if let Some(o) = overrides {
            if o.sets(name) {
                // `set` replaces everything; it is applied last.
                return Action::Drop;
            }
            if o.removes(name) {
                // The session adds nothing (already removed above); the request's own stays.
                return Action::Replace;
            }
        }
        match self.policy(name) {
            // A computed value may be `None` for this request: then the request's own stay.
            Policy::Override if self.headers.contains_key(name) => Action::Drop,
            Policy::IfAbsent | Policy::Override => Action::Replace,
            Policy::Append => Action::Before,
        }
    }

    /// Whether this layer puts a `Cookie` value of its own (the session's or the overrides') on
    /// a request, so that the request's `Cookie` values must be sent as one field.
    fn adds_cookie(self, request_had_cookie: bool, overrides: Option<Applied<'_>>) -> bool {
        if let Some(o) = overrides {
            if o.sets(&COOKIE) {
                return true;
            }
            if o.suppresses(&COOKIE) {
                return false;
            }
        }
        self.defines_cookie && (self.policy(&COOKIE) != Policy::IfAbsent || !request_had_cookie)
    }

    /// For an append-policy name, the request's values went in first; the session's follow.
    fn append_session_values(self, out: &mut HeaderMap, name: HeaderName) {
        if let Ok(Entry::Occupied(mut entry)) = out.try_entry(name) {
            for value in self.headers.get_all(entry.key()) {
                entry.append(value.clone());
            }
        }
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

/// `set` entries make a header exactly their values, whatever was there. At capacity, a value
/// that does not fit is not added.
fn apply_sets(headers: &mut HeaderMap, overrides: Applied<'_>) {
    for name in overrides.set_names() {
        let Some(values) = overrides.set_values(name) else {
            continue;
        };
        // Removing first also frees the slot the first value needs in a full map.
        headers.remove(name);
        for value in values {
            let _ = headers.try_append(name.clone(), value.clone());
        }
    }
}

/// RFC 6265 section 5.4: a user agent sends one `Cookie` field. Several values (the session's,
/// the overrides', the request's) become one, joined with `"; "` in their order, and sensitive.
/// At capacity (the map cannot even hand out the entry) they are left as they are.
fn join_cookies(headers: &mut HeaderMap) {
    let values = headers.get_all(COOKIE);
    if values.iter().nth(1).is_none() {
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for value in values.iter().filter(|v| !v.is_empty()) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    // Valid header values joined by "; " are a valid header value; never assumed, though.
    let Ok(mut value) = HeaderValue::try_from(joined) else {
        return;
    };
    value.set_sensitive(true);
    if let Ok(Entry::Occupied(mut entry)) = headers.try_entry(COOKIE) {
        // Replaces every value of the name, needing no new slot.
        entry.insert(value);
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
                for name in self.0.computed.keys() {
                    let count = self.0.computed.get_all(name).iter().count();
                    map.entry(
                        &name.as_str(),
                        &format_args!("{:?} computed x{count}", self.0.policy(name)),
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
pub(super) mod tests {
    use crate::origin::Target;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http::header::{ACCEPT, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, USER_AGENT};
    use http::{HeaderValue, Method, Uri};

    use super::super::{DefaultHeadersBuilder, DefaultHeadersLayer};
    use super::*;

    const API: &str = "https://api.example.com/v1/items";

    fn build(b: DefaultHeadersBuilder) -> DefaultHeadersLayer {
        b.build().expect("valid session headers")
    }

    /// Apply `layer` to a request to `uri` with `request` headers and `overrides`.
    pub(in crate::default_headers) fn merged(
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
        apply(layer, &Method::GET, &uri, &mut headers, overrides.as_ref());
        headers
    }

    /// Apply the layer's current session to a request's `headers`.
    fn apply(
        layer: &DefaultHeadersLayer,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        overrides: Option<&HeaderOverrides>,
    ) {
        layer
            .session()
            .apply(RequestLine::from_uri(method, uri), headers, overrides);
    }

    pub(in crate::default_headers) fn values<'a>(
        headers: &'a HeaderMap,
        name: &str,
    ) -> Vec<&'a str> {
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

    fn sensitive(headers: &HeaderMap, name: &str) -> bool {
        headers.get_all(name).iter().all(HeaderValue::is_sensitive)
    }

    /// A layer with `extra` filler session names besides the ones under test, so that both the
    /// in-place (few names) and the clone (many names) merges are exercised.
    fn with_filler(mut b: DefaultHeadersBuilder, extra: usize) -> DefaultHeadersLayer {
        for i in 0..extra {
            b = b.header(format!("x-fill-{i}"), "f");
        }
        build(b)
    }

    #[test]
    fn cookie_is_one_field_joined_for_every_merge_path() {
        for extra in [0, 8] {
            // if-absent, several session values, the request has none.
            let layer = with_filler(
                DefaultHeadersLayer::builder()
                    .header(COOKIE, "a=1")
                    .header(COOKIE, "b=2"),
                extra,
            );
            let h = merged(&layer, API, &[], None);
            assert_eq!(values(&h, "cookie"), ["a=1; b=2"], "extra {extra}");
            assert!(sensitive(&h, "cookie"));
            // if-absent, the request has its own: left exactly as the request sent it.
            let h = merged(&layer, API, &[("cookie", "r=1"), ("cookie", "r=2")], None);
            assert_eq!(values(&h, "cookie"), ["r=1", "r=2"], "extra {extra}");

            // override.
            let layer = with_filler(
                DefaultHeadersLayer::builder()
                    .override_header(COOKIE, "a=1")
                    .override_header(COOKIE, "b=2"),
                extra,
            );
            let h = merged(&layer, API, &[("cookie", "r=1")], None);
            assert_eq!(values(&h, "cookie"), ["a=1; b=2"], "extra {extra}");

            // append: the request's pairs, then the session's (aiohttp's
            // test_cookies_merge_with_headers).
            let layer = with_filler(
                DefaultHeadersLayer::builder()
                    .append_header(COOKIE, "s=1")
                    .append_header(COOKIE, "s=2"),
                extra,
            );
            let h = merged(&layer, API, &[("cookie", "r=1"), ("cookie", "r=2")], None);
            assert_eq!(
                values(&h, "cookie"),
                ["r=1; r=2; s=1; s=2"],
                "extra {extra}"
            );
            assert!(sensitive(&h, "cookie"));
            let h = merged(&layer, API, &[], None);
            assert_eq!(values(&h, "cookie"), ["s=1; s=2"], "extra {extra}");

            // Overrides set it, several times, with or without remove_all.
            for o in [HeaderOverrides::new(), HeaderOverrides::new().remove_all()] {
                let o = o.set(COOKIE, hv("o=1")).set(COOKIE, hv("o=2"));
                let h = merged(&layer, API, &[("cookie", "r=1")], Some(o));
                assert_eq!(values(&h, "cookie"), ["o=1; o=2"], "extra {extra}");
                assert!(sensitive(&h, "cookie"));
            }
            // Removed: the layer adds nothing, the request's own is left as it is.
            let o = HeaderOverrides::new().remove(COOKIE);
            let h = merged(
                &layer,
                API,
                &[("cookie", "r=1"), ("cookie", "r=2")],
                Some(o),
            );
            assert_eq!(values(&h, "cookie"), ["r=1", "r=2"], "extra {extra}");
        }
        // A session made from a map, several values.
        let mut map = HeaderMap::new();
        map.append(COOKIE, hv("a=1"));
        map.append(COOKIE, hv("b=2"));
        let h = merged(&DefaultHeadersLayer::new(map), API, &[], None);
        assert_eq!(values(&h, "cookie"), ["a=1; b=2"]);
        // No session cookie, overrides set one while the request has its own.
        let layer = build(DefaultHeadersLayer::builder().header(ACCEPT, "*/*"));
        let o = HeaderOverrides::new().set(COOKIE, hv("o=1"));
        let h = merged(
            &layer,
            API,
            &[("cookie", "r=1"), ("cookie", "r=2")],
            Some(o),
        );
        assert_eq!(values(&h, "cookie"), ["o=1"]);
    }

    #[test]
    fn credentials_set_per_request_act_only_at_their_origin() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .header(COOKIE, "session=1")
                .header(ACCEPT, "application/json"),
        );
        let o = HeaderOverrides::new()
            .set(COOKIE, hv("caller=1"))
            .set(ACCEPT, hv("text/csv"));
        // The first request binds the cookie to its origin.
        let h = merged(&layer, API, &[], Some(o.clone()));
        assert_eq!(values(&h, "cookie"), ["caller=1"]);
        // A hop elsewhere: not the caller's cookie, and not the session's either; the
        // non-credential `set` still applies, and the request's own cookie is left alone.
        for request in [&[][..], &[("cookie", "own=1")][..]] {
            let h = merged(&layer, "https://other.example/", request, Some(o.clone()));
            let own: Vec<&str> = request.iter().map(|(_, v)| *v).collect();
            assert_eq!(values(&h, "cookie"), own);
            assert_eq!(values(&h, "accept"), ["text/csv"]);
        }
        // Back at the first origin: the caller's again.
        let h = merged(&layer, "https://API.example.com:443/other", &[], Some(o));
        assert_eq!(values(&h, "cookie"), ["caller=1"]);
    }

    /// A request holding `names` filler headers besides `request`.
    fn big_request(names: usize, request: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for i in 0..names {
            let name = HeaderName::from_bytes(format!("x-req-{i}").as_bytes()).expect("name");
            if headers.try_insert(name, hv("r")).is_err() {
                break;
            }
        }
        for (name, value) in request {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("name");
            // Replace a filler name when the map is full, so the request keeps its own.
            if headers
                .try_append(&name, HeaderValue::from_str(value).expect("value"))
                .is_err()
            {
                let filler = headers.keys().next().cloned().expect("a filler");
                headers.remove(filler);
                headers
                    .try_append(name, HeaderValue::from_str(value).expect("value"))
                    .expect("room");
            }
        }
        headers
    }

    #[test]
    fn large_requests_are_merged_in_place_by_the_same_rule() {
        let layer = build(
            DefaultHeadersLayer::builder()
                .header(ACCEPT, "application/json")
                .header(ACCEPT, "text/plain")
                .header("x-absent", "a")
                .override_header(USER_AGENT, "app/1")
                .append_header("x-tags", "s")
                .append_header(COOKIE, "s=1")
                .header("x-removed", "x"),
        );
        let request = [
            ("accept", "text/csv"),
            ("user-agent", "curl"),
            ("x-tags", "r"),
            ("cookie", "r=1"),
            ("x-removed", "own"),
            ("x-set", "own"),
        ];
        let o = HeaderOverrides::new()
            .remove(HeaderName::from_static("x-removed"))
            .set(HeaderName::from_static("x-set"), hv("o1"))
            .set(HeaderName::from_static("x-set"), hv("o2"));
        let uri: Uri = API.parse().expect("uri");
        let mut small = big_request(0, &request);
        apply(&layer, &Method::GET, &uri, &mut small, Some(&o));
        let mut large = big_request(5_000, &request);
        apply(&layer, &Method::GET, &uri, &mut large, Some(&o));
        for name in small.keys() {
            assert_eq!(
                values(&large, name.as_str()),
                values(&small, name.as_str()),
                "{name}"
            );
        }
        assert_eq!(values(&large, "accept"), ["text/csv"]);
        assert_eq!(values(&large, "user-agent"), ["app/1"]);
        assert_eq!(values(&large, "x-tags"), ["r", "s"]);
        assert_eq!(values(&large, "cookie"), ["r=1; s=1"]);
        assert_eq!(values(&large, "x-absent"), ["a"]);
        assert_eq!(values(&large, "x-removed"), ["own"]);
        assert_eq!(values(&large, "x-set"), ["o1", "o2"]);
        assert_eq!(large.keys_len(), 5_000 + small.keys_len());
    }

    #[test]
    fn a_request_at_capacity_never_panics_and_keeps_its_own_headers() {
        let big_session = |b: DefaultHeadersBuilder| with_filler(b, 8);
        for layer in [
            build(DefaultHeadersLayer::builder().header("x-api-key", "k")),
            big_session(DefaultHeadersLayer::builder().header("x-api-key", "k")),
            big_session(
                DefaultHeadersLayer::builder()
                    .override_header("x-req-1", "session")
                    .append_header(COOKIE, "s=1"),
            ),
        ] {
            for o in [
                None,
                Some(HeaderOverrides::new().set(HeaderName::from_static("x-new"), hv("v"))),
                Some(
                    HeaderOverrides::new()
                        .remove_all()
                        .set(COOKIE, hv("o=1"))
                        .set(COOKIE, hv("o=2")),
                ),
            ] {
                let uri: Uri = API.parse().expect("uri");
                let mut headers = big_request(usize::MAX, &[("cookie", "r=1")]);
                let before = headers.keys_len();
                assert_eq!(before, crate::default_headers::MAX_HEADER_NAMES);
                apply(&layer, &Method::GET, &uri, &mut headers, o.as_ref());
                assert!(headers.keys_len() <= before);
                assert!(headers.contains_key("x-req-2") && headers.contains_key("x-req-20000"));
                assert!(headers.contains_key("cookie"));
            }
        }
    }
    /// A computed value that counts its calls and answers `value`.
    fn counted(
        value: Option<&'static str>,
    ) -> (
        Arc<AtomicUsize>,
        impl Fn(&RequestHead<'_>) -> Option<HeaderValue> + Send + Sync + 'static,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let make = move |_: &RequestHead<'_>| {
            counter.fetch_add(1, Ordering::SeqCst);
            value.map(HeaderValue::from_static)
        };
        (calls, make)
    }

    fn calls(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }

    /// The headers a request with its own `request` headers leaves with, for a session built
    /// by `session`: as it is (few names), with 8 filler names (many), and for a request with
    /// 5,000 filler names (merged in place); the fillers are taken out again.
    fn every_path(
        session: impl Fn() -> DefaultHeadersBuilder,
        request: &[(&str, &str)],
        overrides: Option<HeaderOverrides>,
    ) -> Vec<HeaderMap> {
        let uri: Uri = API.parse().expect("uri");
        let mut out = Vec::new();
        for (extra, filler) in [(0, 0), (8, 0), (0, 5_000)] {
            let layer = with_filler(session(), extra);
            let mut headers = big_request(filler, request);
            apply(&layer, &Method::GET, &uri, &mut headers, overrides.as_ref());
            for i in 0..filler {
                headers.remove(format!("x-req-{i}"));
            }
            for i in 0..extra {
                headers.remove(format!("x-fill-{i}"));
            }
            out.push(headers);
        }
        out
    }

    #[test]
    fn computed_values_follow_every_policy_on_every_merge_path() {
        let session = || {
            DefaultHeadersLayer::builder()
                .header_with("x-absent", |_| Some(hv("s")))
                .override_header_with("x-override", |_| Some(hv("s")))
                .append_header_with("x-append", |_| Some(hv("s")))
                .append_header_with("x-append", |_| Some(hv("s2")))
        };
        for h in every_path(session, &[], None) {
            assert_eq!(values(&h, "x-absent"), ["s"]);
            assert_eq!(values(&h, "x-override"), ["s"]);
            assert_eq!(values(&h, "x-append"), ["s", "s2"]);
        }
        let own = [("x-absent", "r"), ("x-override", "r"), ("x-append", "r")];
        for h in every_path(session, &own, None) {
            assert_eq!(values(&h, "x-absent"), ["r"]);
            assert_eq!(values(&h, "x-override"), ["s"]);
            assert_eq!(values(&h, "x-append"), ["r", "s", "s2"]);
        }
        // Static and computed values of different names mix.
        let mixed = || {
            session()
                .header(ACCEPT, "a/b")
                .override_header(USER_AGENT, "u")
        };
        for h in every_path(mixed, &[("user-agent", "curl")], None) {
            assert_eq!(values(&h, "accept"), ["a/b"]);
            assert_eq!(values(&h, "user-agent"), ["u"]);
            assert_eq!(values(&h, "x-absent"), ["s"]);
        }
    }

    #[test]
    fn a_computed_value_of_none_adds_nothing() {
        let session = || {
            DefaultHeadersLayer::builder()
                .header_with("x-absent", |_| None)
                .override_header_with("x-override", |_| None)
                .append_header_with("x-append", |_| None)
                .append_header_with(COOKIE, |_| None)
        };
        for h in every_path(session, &[], None) {
            assert!(h.is_empty(), "{h:?}");
        }
        // The name is left to the request, whatever the policy.
        let own = [
            ("x-override", "r"),
            ("x-append", "r"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ];
        for h in every_path(session, &own, None) {
            assert_eq!(values(&h, "x-override"), ["r"]);
            assert_eq!(values(&h, "x-append"), ["r"]);
            assert_eq!(values(&h, "cookie"), ["a=1", "b=2"]);
        }
    }

    #[test]
    fn overrides_beat_computed_values_which_are_then_not_computed() {
        let (absent, f_absent) = counted(Some("s"));
        let (over, f_over) = counted(Some("s"));
        let (auth, f_auth) = counted(Some("Basic s"));
        let layer = build(
            DefaultHeadersLayer::builder()
                .header_with("x-absent", f_absent)
                .override_header_with("x-override", f_over)
                .header_with(AUTHORIZATION, f_auth)
                .header(ACCEPT, "a/b"),
        );
        let x_absent = HeaderName::from_static("x-absent");
        let x_override = HeaderName::from_static("x-override");
        let token = crate::BearerToken::new("caller").expect("valid");
        for o in [
            HeaderOverrides::new()
                .remove(x_absent.clone())
                .remove(x_override.clone())
                .without_auth(),
            HeaderOverrides::new().remove_all(),
            HeaderOverrides::new()
                .set(x_absent.clone(), hv("o"))
                .set(x_override.clone(), hv("o"))
                .bearer_token(token.clone()),
        ] {
            let sets = o
                .at(&Target::from_uri(&API.parse().expect("uri")))
                .sets(&x_absent);
            let h = merged(&layer, API, &[("x-override", "r")], Some(o));
            if sets {
                assert_eq!(values(&h, "x-absent"), ["o"]);
                assert_eq!(values(&h, "x-override"), ["o"]);
            } else {
                assert!(h.get("x-absent").is_none());
                assert_eq!(values(&h, "x-override"), ["r"]);
            }
            assert!(h.get(AUTHORIZATION).is_none());
        }
        assert_eq!((calls(&absent), calls(&over), calls(&auth)), (0, 0, 0));

        // A credential set elsewhere is withheld: it removes the name, so nothing is computed.
        let o = HeaderOverrides::new().set(AUTHORIZATION, hv("Basic caller"));
        let h = merged(&layer, API, &[], Some(o.clone()));
        assert_eq!(values(&h, "authorization"), ["Basic caller"]);
        let h = merged(&layer, "https://other.example/", &[], Some(o));
        assert!(h.get(AUTHORIZATION).is_none());
        assert_eq!(calls(&auth), 0);

        // Overrides of other names leave them computed, once per request.
        let before = (calls(&absent), calls(&over));
        let o = HeaderOverrides::new().remove(ACCEPT);
        let h = merged(&layer, API, &[], Some(o));
        assert_eq!(values(&h, "x-absent"), ["s"]);
        assert_eq!(values(&h, "authorization"), ["Basic s"]);
        assert_eq!(
            (calls(&absent), calls(&over), calls(&auth)),
            (before.0 + 1, before.1 + 1, 1)
        );
    }

    #[test]
    fn computed_values_are_not_computed_when_unused() {
        let (absent, f_absent) = counted(Some("s"));
        let (scoped, f_scoped) = counted(Some("s"));
        let layer = build(DefaultHeadersLayer::builder().header_with("x-request-id", f_absent));
        // The request has its own: if-absent needs no value.
        let h = merged(&layer, API, &[("x-request-id", "mine")], None);
        assert_eq!(values(&h, "x-request-id"), ["mine"]);
        assert_eq!(calls(&absent), 0);
        let h = merged(&layer, API, &[], None);
        assert_eq!(values(&h, "x-request-id"), ["s"]);
        assert_eq!(calls(&absent), 1);

        // Outside the layer's origins.
        let layer = build(
            DefaultHeadersLayer::builder()
                .header_with("x-request-id", f_scoped)
                .origin("https://api.example.com"),
        );
        for uri in [
            "https://other.example.com/",
            "http://api.example.com/",
            "https://api.example.com@evil.net/",
            "/relative",
        ] {
            assert!(merged(&layer, uri, &[], None).is_empty(), "{uri}");
        }
        assert_eq!(calls(&scoped), 0);
        assert_eq!(
            values(&merged(&layer, API, &[], None), "x-request-id"),
            ["s"]
        );
        assert_eq!(calls(&scoped), 1);
        // Not in the snapshot either.
        assert!(layer.headers().is_empty());
    }

    #[test]
    fn computed_values_are_sensitive_as_static_ones_are() {
        let marked = |_: &RequestHead<'_>| {
            let mut v = hv("marked");
            v.set_sensitive(true);
            Some(v)
        };
        let layer = build(
            DefaultHeadersLayer::builder()
                .sensitive_header_with("x-signature", |_| Some(hv("sig")))
                .header_with(AUTHORIZATION, |_| Some(hv("Basic a")))
                .override_header_with(PROXY_AUTHORIZATION, |_| Some(hv("Basic p")))
                .append_header_with(COOKIE, |_| Some(hv("c=1")))
                .append_header_with(COOKIE, |_| Some(hv("c=2")))
                .header_with("x-marked", marked)
                .header_with("x-plain", |_| Some(hv("plain"))),
        );
        let h = merged(&layer, API, &[("cookie", "r=1")], None);
        for name in [
            "x-signature",
            "authorization",
            "proxy-authorization",
            "cookie",
            "x-marked",
        ] {
            assert!(sensitive(&h, name), "{name}");
        }
        assert!(!h["x-plain"].is_sensitive());
        // Cookie values, computed or not, are one field.
        assert_eq!(values(&h, "cookie"), ["r=1; c=1; c=2"]);
    }

    #[test]
    fn a_name_is_static_or_computed_and_the_last_call_decides() {
        let (f_calls, f) = counted(Some("computed"));
        let layer = build(
            DefaultHeadersLayer::builder()
                .header("x-a", "static")
                .header("x-a", "static2")
                .append_header_with("x-a", f)
                .header_with("x-b", |_| Some(hv("computed")))
                .override_header("x-b", "static"),
        );
        let h = merged(&layer, API, &[("x-a", "r"), ("x-b", "r")], None);
        // x-a: only the function, with the policy of the last call (append).
        assert_eq!(values(&h, "x-a"), ["r", "computed"]);
        // x-b: only the static value, override.
        assert_eq!(values(&h, "x-b"), ["static"]);
        assert_eq!(calls(&f_calls), 1);
        assert!(layer.headers().get("x-a").is_none());
        assert_eq!(values(&layer.headers(), "x-b"), ["static"]);
    }

    #[test]
    fn a_computed_value_sees_the_request_as_it_was_sent() {
        type Seen = (Method, Uri, Vec<String>);
        let seen: Arc<std::sync::Mutex<Vec<Seen>>> = Arc::default();
        let record = Arc::clone(&seen);
        let layer = build(
            DefaultHeadersLayer::builder()
                .header(ACCEPT, "application/json")
                .append_header_with("x-seen", move |head| {
                    let names = head.headers().keys().map(|n| n.to_string()).collect();
                    let mut seen = record.lock().expect("lock");
                    seen.push((head.method().clone(), head.uri().clone(), names));
                    let value = format!("{} {}", head.method(), head.uri().path());
                    HeaderValue::from_str(&value).ok()
                }),
        );
        let uri: Uri = "https://api.example.com/v1/items?page=2"
            .parse()
            .expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert("x-own", hv("1"));
        apply(&layer, &Method::DELETE, &uri, &mut headers, None);
        assert_eq!(values(&headers, "x-seen"), ["DELETE /v1/items"]);
        let seen = seen.lock().expect("lock");
        // The request's own headers only: the session's are merged afterwards.
        assert_eq!(*seen, [(Method::DELETE, uri, vec!["x-own".to_owned()])]);
        assert!(format!("{:?}", layer).contains("x-seen"));
    }
}
