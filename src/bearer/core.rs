//! The bearer rule, once: which credential (if any) a request gets, whether it may be sent, and
//! whether its response rejected the token. The tower service and the reqwest-middleware
//! adapter both call [`AuthCore::prepare`] and [`finish`].

use std::fmt;
use std::sync::Arc;

use http::header::{Entry, VacantEntry, AUTHORIZATION};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::cache::{Lookup, Ticket, TokenCache};
use crate::error::{Error, ErrorKind};
use crate::origin::{OriginId, Origins, Target};
use crate::overrides::HeaderOverrides;
use crate::token::BearerToken;

pub(crate) enum Credential {
    Fixed(BearerToken),
    Source(TokenCache),
}

pub(crate) struct AuthCore {
    pub(crate) credential: Credential,
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
        let overrides = overrides.map(|o| o.at(&target));
        if !self.origins.allow(&target) {
            return Prepared::Ready(None);
        }
        if let Some(o) = overrides {
            // A per-request credential beats removal and the request's own Authorization,
            // as `set` beats `remove`. One bound to another origin is not sent here, and then
            // suppresses ours too (`suppresses` below): the caller's request carries no
            // credential of the service's.
            if let Some(token) = o.bearer() {
                if let Some(err) = self.refuse(&target) {
                    return Prepared::Refused(err);
                }
                return match attach(headers, token.header_value().clone()) {
                    Ok(()) => Prepared::Ready(None),
                    Err(err) => Prepared::Refused(err),
                };
            }
            if let Some(values) = o.set_values(&AUTHORIZATION) {
                if let Some(err) = self.refuse(&target) {
                    return Prepared::Refused(err);
                }
                // Removing first frees the slot the first value needs in a full map.
                headers.remove(AUTHORIZATION);
                for value in values {
                    if headers.try_append(AUTHORIZATION, value.clone()).is_err() {
                        return Prepared::Refused(too_full());
                    }
                }
                return Prepared::Ready(None);
            }
            if o.suppresses(&AUTHORIZATION) {
                return Prepared::Ready(None);
            }
        }
        // One lookup of the name, whether or not the request has its own.
        match headers.try_entry(AUTHORIZATION) {
            Ok(Entry::Vacant(slot)) => return self.fill(&target, slot),
            Ok(Entry::Occupied(_)) => return Prepared::Ready(None),
            // Only at capacity: a full map hands out no entry, not even an occupied one.
            Err(_) => {}
        }
        if headers.contains_key(AUTHORIZATION) {
            return Prepared::Ready(None);
        }
        Prepared::Refused(self.refuse(&target).unwrap_or_else(too_full))
    }

    /// The layer's own token, into the request's empty `Authorization` slot.
    #[inline]
    fn fill(&self, target: &Target<'_>, slot: VacantEntry<'_, HeaderValue>) -> Prepared {
        if let Some(err) = self.refuse(target) {
            return Prepared::Refused(err);
        }
        // `try_entry` made room for the value, so these inserts succeed; an `Err` still sends
        // nothing.
        match &self.credential {
            Credential::Fixed(token) => match slot.try_insert(token.header_value().clone()) {
                Ok(_) => Prepared::Ready(None),
                Err(_) => Prepared::Refused(too_full()),
            },
            Credential::Source(cache) => match cache.lookup() {
                Lookup::Ready(value, ticket) => match slot.try_insert(value) {
                    Ok(_) => Prepared::Ready(Some(self.carried(ticket))),
                    Err(_) => Prepared::Refused(too_full()),
                },
                Lookup::Wait => Prepared::NeedToken,
            },
        }
    }

    /// Wait for the source's token (only after [`Prepared::NeedToken`]).
    pub(crate) async fn acquire(&self) -> Result<(HeaderValue, Option<Carried>), Error> {
        match &self.credential {
            Credential::Fixed(token) => Ok((token.header_value().clone(), None)),
            Credential::Source(cache) => {
                let (value, ticket) = cache.acquire().await?;
                Ok((value, Some(self.carried(ticket))))
            }
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
        Some(plaintext_refused(target))
    }
}

#[cold]
fn plaintext_refused(target: &Target<'_>) -> Error {
    crate::trace::plaintext_refused(&target.describe());
    Error::new(
        ErrorKind::PlaintextRefused,
        format!(
            "refused to send a bearer token in plain text to {}; use https, or \
             allow_http(true) on a network you trust",
            target.describe()
        ),
    )
}

#[cold]
fn too_full() -> Error {
    Error::new(
        ErrorKind::TooManyHeaders,
        "the request's header map is full (an http::HeaderMap holds at most 24,576 names): \
         no room for Authorization, nothing was sent; send fewer headers",
    )
}

/// Put the token on the request, as its only `Authorization` value.
///
/// # Errors
///
/// [`ErrorKind::TooManyHeaders`] when the request's map is full; then nothing may be sent.
pub(crate) fn attach(headers: &mut HeaderMap, value: HeaderValue) -> Result<(), Error> {
    // Removing first frees the slot the value needs in a full map.
    headers.remove(AUTHORIZATION);
    headers
        .try_insert(AUTHORIZATION, value)
        .map(drop)
        .map_err(|_| too_full())
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
        match &self.credential {
            Credential::Fixed(_) => d.field("token", &"fixed (<redacted>)"),
            Credential::Source(cache) => d
                .field("token", &"source")
                .field("refresh_before", &cache.refresh_before())
                .field("fetch_timeout", &cache.fetch_timeout()),
        };
        d.field("origins", &self.origins)
            .field("allow_http", &self.allow_http)
            .field("invalidate_when", &self.rejects)
            .finish()
    }
}
