//! OAuth 2.0 token sources (feature `oauth2`): a [`TokenEndpoint`] (URL, client id and
//! secret, and the HTTP client you already have), and the grants that fetch tokens from it,
//! [`ClientCredentials`] and [`RefreshTokenGrant`]. Error responses become an
//! [`OAuthError`].

mod endpoint;
mod grants;
mod response;
mod transport;

pub use endpoint::{ClientAuth, TokenEndpoint, TokenEndpointBuilder};
pub use grants::{ClientCredentials, RefreshTokenGrant};
pub use response::{OAuthError, OAuthErrorCode};
