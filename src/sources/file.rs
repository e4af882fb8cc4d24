//! [`TokenFile`]: a token read from a file that something else keeps fresh.

use std::fmt;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::runtime::Handle;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::jwt;
use crate::error::{BoxError, Error, ErrorKind};
use crate::token::{b64token_problem, BearerToken, Token, TokenSource};

/// How often a [`TokenFile`] is re-read by default.
const DEFAULT_REREAD: Duration = Duration::from_secs(60);
/// A token file larger than this is refused: tokens are sent in a header, which servers cap
/// at 8 to 64 KiB.
const MAX_FILE_SIZE: u64 = 64 * 1024;

/// A [`TokenSource`] that reads the token from a file, such as a Kubernetes projected
/// service-account token (`/var/run/secrets/tokens/...`) or a Vault agent sink, and re-reads
/// it every minute (see [`reread_every`](Self::reread_every)).
///
/// - Whitespace around the token (a trailing newline) is trimmed, and the rest must be an
///   RFC 6750 `b64token`.
/// - If the token is a JWT, its `exp` claim is read (not verified) and the token is never
///   sent past it. Other tokens have no expiry of their own.
/// - A JWT must be whole. A token whose first dot-separated part is the base64url encoding of
///   a JSON object with an `alg` member (a JOSE header) is taken for a JWT, and is refused
///   (as a failed read) unless it has exactly three parts, the second the base64url encoding
///   of a JSON object and the third empty or base64url. That catches most JWTs read while
///   the file was being rewritten in place; a JWT cut inside its header, just after its
///   second dot or inside its signature still looks whole and is used (a cut signature is
///   rejected by the server: after its `401` the file is read again). A file that is renamed
///   into place whole (as Kubernetes updates projected volumes) is never read half-written.
///   Anything else is an opaque token, whatever it looks like: a half-written opaque token
///   cannot be told from a whole one.
/// - The file is re-read in the background once its interval has passed, while requests go on
///   using the token they have ([`Token::refresh_in`]). A re-read that fails (the file deleted,
///   unreadable, empty or holding something that is not a token) keeps the last good token
///   in use, up to its `exp` if it has one, is reported as a `WARN` event (`token refresh
///   failed`, with the path and the reason, never the file's content), and is tried again a
///   few seconds later. The first read failing is an error for the requests waiting on it.
/// - After a `401` the file is read again at once.
///
/// The file is read on tokio's blocking thread pool (as `tokio::fs` does), so that a slow
/// filesystem (a stuck network mount) never blocks the runtime's threads and the layer's
/// `fetch_timeout` still applies; outside a tokio runtime it is read in place. A read cannot
/// be cancelled, so at most one is outstanding per `TokenFile` (and its clones): while one has
/// not returned (a hung mount, a FIFO with no writer), every fetch fails at once with an error
/// saying so, and no further thread is taken. The same holds for two fetches at the same
/// time through clones shared by two layers: the second fails, and its layer retries later.
///
/// ```
/// use tower_client_headers::sources::TokenFile;
/// use tower_client_headers::BearerAuthLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let dir = tempfile::tempdir()?;
/// let path = "/var/run/secrets/tokens/api-token";
/// # let path = dir.path().join("api-token");
/// # std::fs::write(&path, "eyJhbGciOi.eyJzdWIi.SflKxw\n")?;
/// let auth = BearerAuthLayer::builder()
///     .source(TokenFile::new(path))
///     .origin("https://api.example.com")
///     .build()?;
/// auth.refresh().await?; // read it now: a missing file is an error here
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenFile {
    path: PathBuf,
    reread: Duration,
    /// Held by the read on the blocking pool until it returns: one at a time.
    reading: Arc<Mutex<()>>,
}

impl TokenFile {
    /// Create a new [`TokenFile`] reading `path`, re-read every 60 seconds. Nothing is read
    /// until the first fetch.
    ///
    /// ```
    /// use tower_client_headers::sources::TokenFile;
    ///
    /// let source = TokenFile::new("/var/run/secrets/tokens/api-token");
    /// assert_eq!(source.path(), std::path::Path::new("/var/run/secrets/tokens/api-token"));
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            reread: DEFAULT_REREAD,
            reading: Arc::default(),
        }
    }

    /// Re-read the file this long after each read (default 60 s, as Kubernetes asks of
    /// clients of projected tokens; at least 1 s, see [`Token::refresh_in`]). Requests never
    /// wait for a re-read; a token whose `exp` comes sooner is refreshed ahead of it as usual.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_headers::sources::TokenFile;
    ///
    /// let source = TokenFile::new("/run/vault/token").reread_every(Duration::from_secs(10));
    /// # let _ = source;
    /// ```
    pub fn reread_every(mut self, interval: Duration) -> Self {
        self.reread = interval;
        self
    }

    /// The file read.
    ///
    /// ```
    /// use tower_client_headers::sources::TokenFile;
    ///
    /// assert_eq!(TokenFile::new("token").path().to_str(), Some("token"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read(&self) -> Result<Token, Error> {
        let path = self.path.clone();
        let (token, exp) = match Handle::try_current() {
            Ok(handle) => {
                let Ok(reading) = Arc::clone(&self.reading).try_lock_owned() else {
                    return Err(self.error(
                        ErrorKind::TokenFetch,
                        "the previous read of it has not returned (a hung filesystem, or a FIFO \
                         with no writer?); no other is started until it does",
                    ));
                };
                handle
                    .spawn_blocking(move || {
                        let _reading = reading;
                        read_token(&path)
                    })
                    .await
                    .map_err(|_| {
                        self.error(
                            ErrorKind::TokenFetch,
                            "the read was cancelled (the runtime is shutting down?)",
                        )
                    })??
            }
            Err(_) => read_token(&path)?,
        };
        let token = Token::new(token).refresh_in(self.reread);
        let Some(exp) = exp else {
            return Ok(token);
        };
        match exp.duration_since(SystemTime::now()) {
            Ok(left) if !left.is_zero() => Ok(match Instant::now().checked_add(left) {
                Some(at) => token.valid_until(at),
                None => token,
            }),
            _ => Err(self.error(
                ErrorKind::TokenFetch,
                "it holds a JWT whose `exp` claim has passed; whatever writes the file has not \
                 renewed it",
            )),
        }
    }

    fn error(&self, kind: ErrorKind, problem: &str) -> Error {
        file_error(&self.path, kind, problem)
    }
}

fn file_error(path: &Path, kind: ErrorKind, problem: &str) -> Error {
    Error::new(kind, format!("token file `{}`: {problem}", path.display()))
}

/// Read, trim and validate the token in `path`, with the expiry of a JWT. Errors name the
/// path and the problem, never the content.
fn read_token(path: &Path) -> Result<(BearerToken, Option<SystemTime>), Error> {
    let io_error = |err: std::io::Error| {
        Error::with_source(
            ErrorKind::TokenFetch,
            format!("token file `{}`: could not read it", path.display()),
            BoxError::from(err),
        )
    };
    let mut content = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_SIZE + 1).read_to_end(&mut content))
        .map_err(io_error)?;
    let invalid = |problem: &str| file_error(path, ErrorKind::InvalidToken, problem);
    if content.len() as u64 > MAX_FILE_SIZE {
        return Err(invalid("it is larger than 64 KiB, too large for a token"));
    }
    let text = std::str::from_utf8(&content).map_err(|_| invalid("it is not UTF-8 text"))?;
    let token = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if token.is_empty() {
        return Err(invalid("it is empty"));
    }
    if let Some(problem) = b64token_problem(token) {
        return Err(invalid(&format!(
            "it does not hold a bearer token: {problem}"
        )));
    }
    let exp = jwt::check(token).map_err(invalid)?;
    Ok((BearerToken::new(token)?, exp))
}

impl TokenSource for TokenFile {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Token, BoxError>> + Send + '_>> {
        Box::pin(async move { self.read().await.map_err(BoxError::from) })
    }
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .field("reread_every", &self.reread)
            .finish()
    }
}

#[cfg(test)]
mod tests;
