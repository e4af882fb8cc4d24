//! The bearer rule, once: which credential (if any) a request gets, and whether it may be sent.
//! The tower service and the reqwest-middleware adapter both call [`AuthCore::prepare`].

use std::fmt;

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
}

/// What [`AuthCore::prepare`] did to a request.
pub(crate) enum Prepared {
    /// Ready to send. With a ticket, the request carries the cached token, and a `401` to it
    /// from the origin it went to should invalidate that token (see [`finish`]).
    Ready(Option<Ticket>),
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
                    Ok(_) => Prepared::Ready(Some(ticket)),
                    Err(_) => Prepared::Refused(too_full()),
                },
                Lookup::Wait => Prepared::NeedToken,
            },
        }
    }

    /// Wait for the source's token (only after [`Prepared::NeedToken`]).
    pub(crate) async fn acquire(&self) -> Result<(HeaderValue, Option<Ticket>), Error> {
        match &self.credential {
            Credential::Fixed(token) => Ok((token.header_value().clone(), None)),
            Credential::Source(cache) => {
                let (value, ticket) = cache.acquire().await?;
                Ok((value, Some(ticket)))
            }
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

/// Whether a response tells us the token it carried was rejected: a `401` to a request that
/// carried the cached token invalidates that token, but only when the `401` came from the
/// origin the token was sent to. A `401` from elsewhere (the end of a redirect chain that left
/// the token's origin) says nothing about our token, and must not let another origin force a
/// token fetch per request.
///
/// `sent_to` is where the request went and `answered_by` where the response came from, when
/// the adapter can tell (reqwest: `Response::url()`; tower: tower-http's `RequestUri`, with the
/// `tower-http` feature). When it cannot, the response is the answer of the origin the request
/// went to, as it is for any inner service that does not follow redirects.
#[inline]
pub(crate) fn finish(
    status: StatusCode,
    ticket: Option<Ticket>,
    sent_to: Option<OriginId>,
    answered_by: Option<Target<'_>>,
) {
    if status != StatusCode::UNAUTHORIZED {
        return;
    }
    let Some(ticket) = ticket else {
        return;
    };
    if let (Some(sent_to), Some(answered_by)) = (sent_to, answered_by) {
        if OriginId::of(&answered_by) != sent_to {
            return;
        }
    }
    // The only call into the cache: it drops the token if it is still the cached one.
    ticket.invalidate();
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
            .finish()
    }
}
