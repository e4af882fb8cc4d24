//! The token file source through the layer, on tokio's paused clock (the file is read on the
//! blocking pool, during which tokio does not advance its paused clock). What a failed re-read
//! reports is in `tests/token_file_events.rs`, alone in its binary so that no other test
//! races its subscriber.

use std::convert::Infallible;
use std::time::UNIX_EPOCH;

use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower::{service_fn, Service, ServiceExt};
use tower_layer::Layer;

use super::*;
use crate::sources::jwt::encode_base64url;
use crate::{BearerAuthLayer, Credential};

const SEC: Duration = Duration::from_secs(1);
const API: &str = "https://api.example.com/v1";

/// A service that answers with the `Authorization` it got.
fn echo() -> impl Service<
    Request<()>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<String>, Infallible>> + Send,
> + Clone
       + Send {
    service_fn(|req: Request<()>| async move {
        let auth = req
            .headers()
            .get(AUTHORIZATION)
            .map_or("", |v| v.to_str().unwrap_or("<binary>"));
        Ok::<_, Infallible>(Response::new(auth.to_owned()))
    })
}

async fn send<S>(svc: &S) -> Result<String, BoxError>
where
    S: Service<Request<()>, Response = Response<String>, Error = BoxError> + Clone,
{
    let req = Request::get(API).body(()).expect("request");
    Ok(svc.clone().oneshot(req).await?.into_body())
}

async fn auth_of<S>(svc: &S) -> String
where
    S: Service<Request<()>, Response = Response<String>, Error = BoxError> + Clone,
{
    send(svc).await.expect("a response")
}

/// Let a background re-read finish: tokio does not advance its paused clock while the read
/// runs on the blocking pool, so this returns after it.
async fn reread() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

fn our_error(err: &BoxError) -> &Error {
    err.downcast_ref::<Error>().expect("our error")
}

/// An error and its sources, `a: b: c`.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn jwt(exp: u64) -> String {
    let header = encode_base64url(br#"{"alg":"RS256","kid":"k1"}"#);
    let claims = format!(
        r#"{{"aud":["api"],"exp":{exp},"iat":1700000000,"sub":"system:serviceaccount:ns:app"}}"#
    );
    format!(
        "{header}.{}.c2lnbmF0dXJl",
        encode_base64url(claims.as_bytes())
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[tokio::test(start_paused = true)]
async fn a_rotated_file_is_picked_up_once_the_interval_passes_and_no_sooner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    std::fs::write(&path, "  t1 \r\n").expect("write");
    let svc = BearerAuthLayer::from_source(TokenFile::new(&path)).layer(echo());
    assert_eq!(auth_of(&svc).await, "Bearer t1", "trimmed");

    std::fs::write(&path, "t2\n").expect("write"); // rotated
    for _ in 0..59 {
        tokio::time::advance(SEC).await;
        assert_eq!(
            auth_of(&svc).await,
            "Bearer t1",
            "not re-read before the interval"
        );
        reread().await;
    }
    tokio::time::advance(SEC).await; // 60 s after the first read
    let before = Instant::now();
    assert_eq!(
        auth_of(&svc).await,
        "Bearer t1",
        "the re-read runs in the background"
    );
    assert_eq!(Instant::now(), before, "no request waits for a re-read");
    reread().await;
    assert_eq!(auth_of(&svc).await, "Bearer t2");

    // A shorter interval.
    let svc =
        BearerAuthLayer::from_source(TokenFile::new(&path).reread_every(5 * SEC)).layer(echo());
    assert_eq!(auth_of(&svc).await, "Bearer t2");
    std::fs::write(&path, "t3").expect("write");
    tokio::time::advance(5 * SEC).await;
    auth_of(&svc).await;
    reread().await;
    assert_eq!(auth_of(&svc).await, "Bearer t3");
}

#[tokio::test(start_paused = true)]
async fn the_first_read_failing_is_an_error_that_names_the_file_not_its_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    let layer = BearerAuthLayer::from_source(TokenFile::new(&path));
    let svc = layer.clone().layer(echo());

    let err = send(&svc).await.expect_err("no file");
    assert_eq!(our_error(&err).kind(), ErrorKind::TokenFetch);
    let text = chain(our_error(&err));
    assert!(
        text.contains(&format!(
            "token file `{}`: could not read it",
            path.display()
        )),
        "{text}"
    );

    std::fs::write(&path, "s3cr3t\"quoted\"").expect("write");
    let err = layer.refresh().await.expect_err("garbage");
    let text = chain(&err);
    assert!(text.contains("does not hold a bearer token"), "{text}");
    assert!(!text.contains("s3cr3t") && !format!("{err:?}").contains("s3cr3t"));

    std::fs::write(&path, vec![b'a'; 70_000]).expect("write");
    let err = layer.refresh().await.expect_err("too large");
    assert!(
        chain(&err).contains("larger than 64 KiB"),
        "{}",
        chain(&err)
    );

    std::fs::write(&path, b"t\xff").expect("write");
    let err = layer.refresh().await.expect_err("binary");
    assert!(chain(&err).contains("not UTF-8"), "{}", chain(&err));
}

#[tokio::test(start_paused = true)]
async fn a_jwt_exp_sets_the_hard_expiry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    let first = jwt(unix_now() + 120);
    std::fs::write(&path, format!("{first}\n")).expect("write");

    // Read directly: expires with the JWT (whole seconds), re-read after the interval.
    let source = TokenFile::new(&path).reread_every(600 * SEC);
    let now = Instant::now();
    let token = source.fetch().await.expect("read");
    let expires = token.expires_at().expect("the JWT's exp") - now;
    assert!(expires > 118 * SEC && expires <= 120 * SEC, "{expires:?}");
    assert_eq!(token.refresh_at(), Some(now + 600 * SEC));

    // Through the layer: refreshed ahead of the exp (10 s), never sent past it.
    let layer = BearerAuthLayer::builder()
        .source(source)
        .refresh_before(10 * SEC)
        .build()
        .expect("valid");
    let svc = layer.clone().layer(echo());
    assert_eq!(auth_of(&svc).await, format!("Bearer {first}"));
    std::fs::remove_file(&path).expect("remove"); // and nothing renews it
    tokio::time::advance(105 * SEC).await;
    assert_eq!(auth_of(&svc).await, format!("Bearer {first}"));
    reread().await;
    tokio::time::advance(15 * SEC).await; // past the exp
    let err = send(&svc).await.expect_err("expired, and the file is gone");
    assert_eq!(our_error(&err).kind(), ErrorKind::TokenFetch);

    // Renewed: used again.
    let second = jwt(unix_now() + 3600);
    std::fs::write(&path, &second).expect("write");
    layer.refresh().await.expect("read");
    assert_eq!(auth_of(&svc).await, format!("Bearer {second}"));

    // A file holding an expired JWT is an error, not a token.
    std::fs::write(&path, jwt(unix_now() - 10)).expect("write");
    let err = layer.refresh().await.expect_err("expired");
    assert!(
        chain(&err).contains("`exp` claim has passed"),
        "{}",
        chain(&err)
    );
    assert_eq!(
        auth_of(&svc).await,
        format!("Bearer {second}"),
        "the good one stays"
    );

    // Three parts that are not a JWT: an opaque token with no expiry.
    std::fs::write(&path, "abc.def.ghi").expect("write");
    let token = TokenFile::new(&path).fetch().await.expect("read");
    assert_eq!(token.expires_at(), None);
}

#[test]
fn outside_a_runtime_the_file_is_read_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    std::fs::write(&path, "t1").expect("write");
    let source = TokenFile::new(&path);
    let token = futures::executor::block_on(source.fetch()).expect("read");
    assert_eq!(
        token.credential,
        Credential::bearer(BearerToken::new("t1").expect("valid"))
    );
    assert!(format!("{source:?}").contains("reread_every: 60s"));
}

/// A JWT caught half-written (a rotation by truncate-and-write read mid-way) is an error, and
/// the last good token stays in use; what is not a JWT stays an opaque token.
#[tokio::test(start_paused = true)]
async fn a_half_written_jwt_is_an_error_not_an_opaque_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    let good = jwt(unix_now() + 3600);
    std::fs::write(&path, &good).expect("write");
    let layer = BearerAuthLayer::from_source(TokenFile::new(&path));
    let svc = layer.clone().layer(echo());
    assert_eq!(auth_of(&svc).await, format!("Bearer {good}"));

    let (header, rest) = good.split_once('.').expect("a JWT");
    let (claims, _signature) = rest.split_once('.').expect("a JWT");
    let cuts = [
        format!("{header}."),                                    // cut after the header
        format!("{header}.{}", &claims[..claims.len() / 2]),     // cut in the claims
        format!("{header}.{claims}"),                            // cut before the signature
        format!("{header}.{}.sig", &claims[..claims.len() - 3]), // claims not JSON
        format!("{header}.{claims}.s"), // a signature that is not base64url
    ];
    for cut in &cuts {
        std::fs::write(&path, cut).expect("write");
        let err = layer.refresh().await.expect_err("a half-written JWT");
        let text = chain(&err);
        assert!(text.contains("was it read while being written?"), "{text}");
        assert!(!text.contains(header), "{text}");
        assert_eq!(
            auth_of(&svc).await,
            format!("Bearer {good}"),
            "the good one stays"
        );
    }
    // The review's example: an RS256 JWT cut at 40 characters.
    let full = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmMiLCJleHAiOjQxMDI0NDQ4MDB9.c2lnbmF0dXJl";
    std::fs::write(&path, &full[..40]).expect("write");
    TokenFile::new(&path)
        .fetch()
        .await
        .expect_err("a truncated JWT");
    std::fs::write(&path, full).expect("write");
    TokenFile::new(&path).fetch().await.expect("the whole JWT");

    // Not a JOSE header: opaque tokens, as before, whatever their dots.
    for opaque in [
        "abc.def",
        "abc.def.ghi",
        "opaque",
        "a.b.c.d.e",
        "eyJhIjoxfQ.x",
    ] {
        std::fs::write(&path, opaque).expect("write");
        let token = TokenFile::new(&path).fetch().await.expect(opaque);
        assert_eq!(token.expires_at(), None, "{opaque}");
    }
    // An unsecured JWT (empty signature) and a JWE (five parts) are tokens.
    let none = encode_base64url(br#"{"alg":"none"}"#);
    let claims = encode_base64url(br#"{"sub":"x"}"#);
    std::fs::write(&path, format!("{none}.{claims}.")).expect("write");
    TokenFile::new(&path).fetch().await.expect("alg none");
    let jwe = encode_base64url(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#);
    std::fs::write(&path, format!("{jwe}.a2V5.aXY.Y2lwaGVy.dGFn")).expect("write");
    TokenFile::new(&path).fetch().await.expect("a JWE");
}
