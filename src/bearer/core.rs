//! The bearer rule, once: which credential (if any) a request gets, and whether it may be sent.
//! The tower service and the reqwest-middleware adapter both call [`AuthCore::prepare`].

use std::fmt;

use http::header::{Entry, AUTHORIZATION};
use http::{HeaderMap, HeaderValue};

use super::cache::{Lookup, Ticket, TokenCache};
use crate::error::{Error, ErrorKind};
use crate::origin::{Origins, Target};
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
    /// should invalidate that token.
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
        if !self.origins.allow(&target) {
            return Prepared::Ready(None);
        }
        if let Some(o) = overrides {
            // A per-request credential beats removal and the request's own Authorization,
            // as `set` beats `remove`.
            if let Some(token) = &o.bearer {
                if let Some(err) = self.refuse(&target) {
                    return Prepared::Refused(err);
                }
                headers.insert(AUTHORIZATION, token.header_value().clone());
                return Prepared::Ready(None);
            }
            let mut values = o.set.get_all(AUTHORIZATION).iter();
            if let Some(first) = values.next() {
                if let Some(err) = self.refuse(&target) {
                    return Prepared::Refused(err);
                }
                headers.insert(AUTHORIZATION, first.clone());
                for value in values {
                    headers.append(AUTHORIZATION, value.clone());
                }
                return Prepared::Ready(None);
            }
            if o.suppresses(&AUTHORIZATION) {
                return Prepared::Ready(None);
            }
        }
        // One lookup of the name, whether or not the request has its own.
        let Entry::Vacant(slot) = headers.entry(AUTHORIZATION) else {
            return Prepared::Ready(None);
        };
        if let Some(err) = self.refuse(&target) {
            return Prepared::Refused(err);
        }
        match &self.credential {
            Credential::Fixed(token) => {
                slot.insert(token.header_value().clone());
                Prepared::Ready(None)
            }
            Credential::Source(cache) => match cache.lookup() {
                Lookup::Ready(value, ticket) => {
                    slot.insert(value);
                    Prepared::Ready(Some(ticket))
                }
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

/// Put the token the request waited for on it.
pub(crate) fn attach(headers: &mut HeaderMap, value: HeaderValue) {
    headers.insert(AUTHORIZATION, value);
}

/// Whether a response tells us the token it carried was rejected.
#[inline]
pub(crate) fn finish(status: http::StatusCode, ticket: Option<Ticket>) {
    if status == http::StatusCode::UNAUTHORIZED {
        if let Some(ticket) = ticket {
            ticket.invalidate();
        }
    }
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
