//! Ready-made [`TokenSource`](crate::TokenSource)s, for
//! [`BearerAuthLayer::from_source`](crate::BearerAuthLayer::from_source) and
//! [`BearerAuthBuilder::source`](crate::BearerAuthBuilder::source):
//!
//! - [`TokenFile`]: a token file that something else keeps fresh (Kubernetes projected
//!   service-account tokens, Vault agent sinks), re-read every minute; a JWT's `exp` is
//!   honoured; a failed re-read keeps the last good token.
//! - With the `oauth2` feature, OAuth 2.0 grants against a token endpoint, over an HTTP
//!   client you already have (any tower service, or a `reqwest::Client`): `ClientCredentials`
//!   (RFC 6749 section 4.4) and `RefreshTokenGrant` (section 6), whose rotated refresh tokens
//!   are handed to a callback to persist, both over a `TokenEndpoint`; an error response
//!   becomes an `OAuthError`.
//!
//! They are token sources like any other: the layer's cache decides when to fetch (once for
//! any number of waiting requests, ahead of expiry in the background, again after a `401`),
//! and its backoff and `fetch_timeout` apply.
//!
//! ```
//! use tower_client_headers::sources::TokenFile;
//! use tower_client_headers::BearerAuthLayer;
//!
//! let auth = BearerAuthLayer::from_source(TokenFile::new("/var/run/secrets/tokens/api-token"));
//! # let _ = auth;
//! ```

mod file;
mod jwt;
#[cfg(feature = "oauth2")]
mod oauth2;

pub use file::TokenFile;
#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub use oauth2::{
    ClientAuth, ClientCredentials, OAuthError, OAuthErrorCode, RefreshTokenGrant, TokenEndpoint,
    TokenEndpointBuilder,
};
