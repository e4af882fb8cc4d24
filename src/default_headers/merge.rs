//! The merge rule: how session headers, a request's own headers and its [`HeaderOverrides`]
//! combine. This is the only implementation of it; the tower service and the
//! reqwest-middleware adapter both call [`SessionHeaders::apply`].

use std::fmt;

use http::header::Entry;
use http::{HeaderMap, HeaderName};

use crate::origin::{Origins, Target};
use crate::overrides::HeaderOverrides;

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
            Some(o) if o.remove_all => apply_sets(headers, o),
            _ => self.merge(headers, overrides),
        }
    }

    /// Start from a clone of the prebuilt session map and lay the request's own headers over it.
    /// Cloning copies the stored hashes, so only the request's few names are hashed, instead of
    /// every session name being looked up and inserted into the request's map.
    fn merge(&self, headers: &mut HeaderMap, overrides: Option<&HeaderOverrides>) {
        let request = std::mem::take(headers);
        let mut out = self.headers.clone();
        if let Some(o) = overrides {
            for name in &o.removed {
                out.remove(name);
            }
        }
        // What to do with the values of the request's current header name.
        let mut current: Option<(HeaderName, Action)> = None;
        for (name, value) in request {
            let (name, action) = match name {
                Some(name) => {
                    if let Some((prev, Action::Before)) = current.take() {
                        self.append_session_values(&mut out, prev);
                    }
                    let action = self.action(&name, overrides);
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
            if o.removed.contains(name) {
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
