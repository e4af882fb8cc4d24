//! The bearer rule, once: which credential (if any) a request gets, whether it may be sent, and
//! whether its response rejected the token. The tower service and the reqwest-middleware
//! adapter both call [`AuthCore::prepare`] and [`finish`].

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::header::{Entry, VacantEntry};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::cache::{Lookup, Ticket, TokenCache};
use crate::error::{Error, ErrorKind};
use crate::origin::{OriginId, Origins, Target};
use crate::overrides::HeaderOverrides;

/// Where a layer's own credential comes from.
pub(crate) enum Secret {
    /// Given to the builder (`token`, `credential`): the header value, marked sensitive.
    Fixed(HeaderValue),
    /// Set at runtime (`logged_out`, then `set_credential`; `invalidate` clears it).
    Live(ArcSwapOption<HeaderValue>),
    /// Fetched from a token source and cached.
    Source(TokenCache),
}

/// Up to this many names, [`AuthCore::prepare_plain`] looks for the request's own value by
/// comparing names instead of hashing for an `Entry` (each compare of a standard name is one
/// of two small integers; past a few dozen names the hash is cheaper).
const SCAN_MAX_NAMES: usize = 8;

pub(crate) struct AuthCore {
    /// The one header the layer's credential goes in (`Authorization` unless told).
    pub(crate) header: HeaderName,
    pub(crate) secret: Secret,
    pub(crate) origins: Origins,
    pub(crate) allow_http: bool,
    pub(crate) rejects: Rejects,
}

/// Marks a response that rejected the token its request carried, a token from the layer's
/// [`TokenSource`](crate::TokenSource): [`BearerAuth`](crate::BearerAuth) and its
/// reqwest-middleware impl insert it into the response's extensions.
///
/// A response is a rejection when the layer's test says so (status `401` by default, see
/// [`BearerAuthBuilder::invalidate_when`](crate::BearerAuthBuilder::invalidate_when)) and it
/// came from the origin the token was sent to. Every such response carries the mark, whether
/// it was the one that dropped the cached token or an earlier rejection already had (a retry
/// then gets the newer token). Responses to requests that carried a per-request token
/// ([`HeaderOverrides::bearer_token`](crate::HeaderOverrides::bearer_token)), a fixed token or
/// their own `Authorization` never carry it: sending them again would change nothing.
///
/// `RetryUnauthorized` (features `retry`, `reqwest-middleware`) retries exactly the requests
/// whose answer carries it. To do it by hand:
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use std::convert::Infallible;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token, TokenRejected};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let auth = BearerAuthLayer::from_source(|| async {
///     Ok::<_, BoxError>(Token::new(BearerToken::new("revoked")?))
/// });
/// let server = service_fn(|_: Request<()>| async {
///     let mut response = Response::new(());
///     *response.status_mut() = StatusCode::UNAUTHORIZED;
///     Ok::<_, Infallible>(response)
/// });
/// let client = ServiceBuilder::new().layer(auth).service(server);
/// let response = client.oneshot(Request::get("https://api.example.com/").body(())?).await?;
/// assert_eq!(response.status(), 401);
/// // The cached token was dropped: sending the request again fetches a fresh one.
/// assert!(response.extensions().get::<TokenRejected>().is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenRejected;

/// The builder's `invalidate_when` test.
pub(crate) type RejectTest = dyn Fn(StatusCode, &HeaderMap) -> bool + Send + Sync;

/// Which responses reject the token: the default test (status `401`), or the builder's
/// `invalidate_when`. The default is a unit variant so that a request carrying the cached
/// token costs no reference count for it.
#[derive(Clone, Default)]
pub(crate) enum Rejects {
    #[default]
    Unauthorized,
    When(Arc<RejectTest>),
}

impl Rejects {
    #[inline]
    fn test(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        match self {
            Self::Unauthorized => status == StatusCode::UNAUTHORIZED,
            Self::When(test) => test(status, headers),
        }
    }
}

impl fmt::Debug for Rejects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unauthorized => f.write_str("401"),
            Self::When(_) => f.write_str("custom"),
        }
    }
}

/// A request that carries the source's cached token: which token (the ticket), and the test
/// its response is judged by in [`finish`].
pub(crate) struct Carried {
    ticket: Ticket,
    rejects: Rejects,
}

impl Carried {
    /// `false` when [`finish`] would surely say no: the default test and any status but
    /// `401`. Lets the adapters skip judging nearly every response.
    #[inline]
    pub(crate) fn may_reject(&self, status: StatusCode) -> bool {
        match self.rejects {
            Rejects::Unauthorized => status == StatusCode::UNAUTHORIZED,
            Rejects::When(_) => true,
        }
    }
}

/// What [`AuthCore::prepare`] did to a request.
pub(crate) enum Prepared {
    /// Ready to send. When it carries the cached token, a rejection of it from the origin it
    /// went to drops that token and is marked (see [`finish`]).
    Ready(Option<Carried>),
    /// Needs a token from the source: `acquire`, then [`attach`], then send.
    NeedToken,
    /// Must not be sent.
    Refused(Error),
}

impl AuthCore {
    pub(crate) fn prepare(
        &self,
        target: Target<'_>,
        headers: &mut HeaderMap,
        overrides: Option<&HeaderOverrides>,
    ) -> Prepared {
        // Seen first, the overrides' credentials are bound here, whether or not this layer acts.
        let overrides = overrides.map(|o| o.at_for(&target, Some(&self.header)));
        if !self.origins.allow(&target) {
            return Prepared::Ready(None);
        }
        if let Some(o) = overrides {
            // The request's credentials for other headers (a caller's token forwarded through
            // an API-key layer) are sent too, never dropped for want of a layer of their own.
            let mut others = o.other_credentials(&self.header).peekable();
            if others.peek().is_some() {
                if let Some(err) = self.refuse(&target) {
                    return Prepared::Refused(err);
                }
                for credential in others {
                    let value = credential.header_value().clone();
                    if let Err(err) = attach(headers, credential.header_name(), value) {
                        return Prepared::Refused(err);
                    }
                }
            }
            // A per-request credential beats removal and the request's own value, as `set`
            // beats `remove`. One bound to another origin is not sent here, and then
            // suppresses ours too (`suppresses` below): the caller's request carries no
            // credential of the service's.
            if let Some(credential) = o.credential(&self.header) {
                if let Some(err) = self.refuse(&target) {
                    return Prepared::Refused(err);
                }
                return match attach(headers, &self.header, credential.header_value().clone()) {
                    Ok(()) => Prepared::Ready(None),
                    Err(err) => Prepared::Refused(err),
                };
            }
            if let Some(values) = o.set_values(&self.header) {
                if let Some(err) = self.refuse(&target) {
                    return Prepared::Refused(err);
                }
                // Removing first frees the slot the first value needs in a full map.
                headers.remove(&self.header);
                for value in values {
                    let mut value = value.clone();
                    value.set_sensitive(true);
                    if headers.try_append(&self.header, value).is_err() {
                        return Prepared::Refused(too_full(&self.header));
                    }
                }
                return Prepared::Ready(None);
            }
            if o.suppresses(&self.header) || o.without_auth() {
                mark_own(headers, &self.header);
                return Prepared::Ready(None);
            }
        }
        // One lookup of the name, whether or not the request has its own.
        match headers.try_entry(&self.header) {
            Ok(Entry::Vacant(slot)) => return self.fill(&target, slot),
            Ok(Entry::Occupied(own)) => {
                keep_own(own);
                return Prepared::Ready(None);
            }
            // Only at capacity: a full map hands out no entry, not even an occupied one.
            Err(_) => {}
        }
        if headers.contains_key(&self.header) {
            mark_own(headers, &self.header);
            return Prepared::Ready(None);
        }
        if let Secret::Live(live) = &self.secret {
            if live.load().is_none() {
                // Logged out: nothing to send, nothing to refuse.
                return Prepared::Ready(None);
            }
        }
        Prepared::Refused(
            self.refuse(&target)
                .unwrap_or_else(|| too_full(&self.header)),
        )
    }

    /// Whether [`prepare_plain`](Self::prepare_plain) may decide a request to `uri` with
    /// these `overrides`: a fixed credential or a token source, no origins, no overrides, and
    /// nothing to refuse. Every request it accepts gets what [`prepare`](Self::prepare) would
    /// give it.
    #[inline]
    pub(crate) fn is_plain(&self, uri: &http::Uri, overrides: bool) -> bool {
        !matches!(self.secret, Secret::Live(_))
            && !overrides
            && self.origins.is_empty()
            && (self.allow_http || !Target::uri_is_plaintext_remote(uri))
    }

    /// [`prepare`](Self::prepare) for a request [`is_plain`](Self::is_plain) accepted, in
    /// place: the request's own value is kept (and marked sensitive), else the layer's
    /// credential is added; `Some(carried)` as in [`Prepared::Ready`]. `None` (nothing changed)
    /// when the source has no token to send now or the map is full: [`prepare`](Self::prepare)
    /// then decides.
    #[inline]
    pub(crate) fn prepare_plain(&self, headers: &mut HeaderMap) -> Option<Option<Carried>> {
        if headers.keys_len() <= SCAN_MAX_NAMES {
            // A few names (most requests): comparing them finds the request's own value
            // sooner than hashing the name for an `Entry`.
            if headers.keys().any(|name| *name == self.header) {
                mark_own(headers, &self.header);
                return Some(None);
            }
            let (value, carried) = self.plain_value()?;
            return headers
                .try_insert(self.header.clone(), value)
                .is_ok()
                .then_some(carried);
        }
        match headers.try_entry(&self.header) {
            Ok(Entry::Vacant(slot)) => {
                let (value, carried) = self.plain_value()?;
                slot.try_insert(value).is_ok().then_some(carried)
            }
            Ok(Entry::Occupied(own)) => {
                keep_own(own);
                Some(None)
            }
            Err(_) => None,
        }
    }

    /// The credential [`prepare_plain`](Self::prepare_plain) and [`fill`](Self::fill) add:
    /// the fixed one, or the source's cached token when it may be sent now.
    #[inline(always)]
    fn plain_value(&self) -> Option<(HeaderValue, Option<Carried>)> {
        match &self.secret {
            Secret::Fixed(value) => Some((value.clone(), None)),
            Secret::Source(cache) => match cache.lookup() {
                Lookup::Ready(value, ticket) => Some((value, Some(self.carried(ticket)))),
                Lookup::Wait => None,
            },
            Secret::Live(_) => None,
        }
    }

    /// The layer's own token, into the request's empty `Authorization` slot.
    #[inline]
    fn fill(&self, target: &Target<'_>, slot: VacantEntry<'_, HeaderValue>) -> Prepared {
        // A live credential is refused only when there is one: logged out, nothing is sent.
        if !matches!(self.secret, Secret::Live(_)) {
            if let Some(err) = self.refuse(target) {
                return Prepared::Refused(err);
            }
        }
        let (value, carried) = match &self.secret {
            Secret::Live(live) => match &*live.load() {
                None => return Prepared::Ready(None),
                Some(value) => {
                    if let Some(err) = self.refuse(target) {
                        return Prepared::Refused(err);
                    }
                    (HeaderValue::clone(value), None)
                }
            },
            // The fixed credential, or the cached token; `None` only when a source has no
            // token to send now.
            Secret::Fixed(_) | Secret::Source(_) => match self.plain_value() {
                Some(value) => value,
                None => return Prepared::NeedToken,
            },
        };
        // `try_entry` made room for the value, so this insert succeeds; an `Err` still sends
        // nothing.
        match slot.try_insert(value) {
            Ok(_) => Prepared::Ready(carried),
            Err(_) => Prepared::Refused(too_full(&self.header)),
        }
    }

    /// Wait for the source's token (only after [`Prepared::NeedToken`], which only a source
    /// gives).
    pub(crate) async fn acquire(&self) -> Result<(HeaderValue, Option<Carried>), Error> {
        match &self.secret {
            Secret::Source(cache) => {
                let (value, ticket) = cache.acquire().await?;
                Ok((value, Some(self.carried(ticket))))
            }
            Secret::Fixed(value) => Ok((value.clone(), None)),
            Secret::Live(live) => match &*live.load() {
                Some(value) => Ok((HeaderValue::clone(value), None)),
                // Not reached (a live credential never needs a fetch); fail closed.
                None => Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "no credential is set on this layer (logged out)",
                )),
            },
        }
    }

    #[inline]
    fn carried(&self, ticket: Ticket) -> Carried {
        Carried {
            ticket,
            rejects: self.rejects.clone(),
        }
    }

    #[inline]
    fn refuse(&self, target: &Target<'_>) -> Option<Error> {
        if self.allow_http || !target.is_plaintext_remote() {
            return None;
        }
        Some(plaintext_refused(&self.header, target))
    }
}

/// The request's own credential: kept, and as sensitive as ours would be.
#[inline]
fn keep_own(mut own: http::header::OccupiedEntry<'_, HeaderValue>) {
    for value in own.iter_mut() {
        value.set_sensitive(true);
    }
}

/// [`keep_own`] where the map hands out no entry (suppressed, or full).
fn mark_own(headers: &mut HeaderMap, header: &HeaderName) {
    for (name, value) in headers.iter_mut() {
        if name == header {
            value.set_sensitive(true);
        }
    }
}

#[cold]
fn plaintext_refused(header: &HeaderName, target: &Target<'_>) -> Error {
    crate::trace::plaintext_refused(&target.describe());
    Error::new(
        ErrorKind::PlaintextRefused,
        format!(
            "refused to send a credential (`{header}`) in plain text to {}; use https, or allow_http(true) on a \
             network you trust",
            target.describe()
        ),
    )
}

#[cold]
fn too_full(header: &HeaderName) -> Error {
    Error::new(
        ErrorKind::TooManyHeaders,
        format!(
            "the request's header map is full (an http::HeaderMap holds at most 24,576 names): \
             no room for {header}, nothing was sent; send fewer headers"
        ),
    )
}

/// Put the credential on the request, as the only value of `header`.
///
/// # Errors
///
/// [`ErrorKind::TooManyHeaders`] when the request's map is full; then nothing may be sent.
pub(crate) fn attach(
    headers: &mut HeaderMap,
    header: &HeaderName,
    value: HeaderValue,
) -> Result<(), Error> {
    // Removing first frees the slot the value needs in a full map.
    headers.remove(header);
    headers
        .try_insert(header, value)
        .map(drop)
        .map_err(|_| too_full(header))
}

/// Whether a response rejected the token its request carried: `true` when the request carried
/// the source's cached token, the layer's test (status `401` by default) says so, and the
/// response came from the origin the token was sent to. Then the adapter marks the response
/// with [`TokenRejected`], and the token is dropped if it is still the cached one (an earlier
/// rejection, or a refresh, may have replaced it already: the mark stays, since a retry would
/// get the newer token).
///
/// A rejection from elsewhere (the end of a redirect chain that left the token's origin) says
/// nothing about our token, must not let another origin force a token fetch per request, and
/// is not marked: a retry would send the same token again.
///
/// `sent_to` is where the request went and `answered_by` where the response came from, when
/// the adapter can tell (reqwest: `Response::url()`; tower: tower-http's `RequestUri`, with the
/// `tower-http` feature). When it cannot, the response is the answer of the origin the request
/// went to, as it is for any inner service that does not follow redirects.
#[inline]
#[must_use]
pub(crate) fn finish(
    status: StatusCode,
    headers: &HeaderMap,
    carried: Option<Carried>,
    sent_to: Option<OriginId>,
    answered_by: Option<Target<'_>>,
) -> bool {
    // Per-request, fixed and the request's own credentials: nothing to judge.
    let Some(Carried { ticket, rejects }) = carried else {
        return false;
    };
    if !rejects.test(status, headers) {
        return false;
    }
    if let (Some(sent_to), Some(answered_by)) = (sent_to, answered_by) {
        if OriginId::of(&answered_by) != sent_to {
            return false;
        }
    }
    // The only call into the cache: it drops the token if it is still the cached one.
    ticket.invalidate();
    true
}

impl fmt::Debug for AuthCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("BearerAuth");
        d.field("header", &self.header.as_str());
        match &self.secret {
            Secret::Fixed(_) => d.field("credential", &"fixed (<redacted>)"),
            Secret::Live(live) => d.field(
                "credential",
                if live.load().is_some() {
                    &"set at runtime (<redacted>)"
                } else {
                    &"set at runtime (none: logged out)"
                },
            ),
            Secret::Source(cache) => d
                .field("credential", &"source")
                .field("refresh_before", &cache.refresh_before())
                .field("fetch_timeout", &cache.fetch_timeout()),
        };
        d.field("origins", &self.origins)
            .field("allow_http", &self.allow_http)
            .field("invalidate_when", &self.rejects)
            .finish()
    }
}
