//! Authentication: HS256 JWTs with a pinned algorithm, issuer and audience, and argon2 password hashes.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::role::Role;

/// The token of an `Authorization: Bearer <token>` header; the scheme is matched case-insensitively
/// (RFC 7235). None when the header is absent, not ASCII, or another scheme.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Who a request's bearer token speaks for: None without a token, an error when it is not valid.
pub fn bearer_subject(headers: &axum::http::HeaderMap, keys: &JwtKeys) -> Result<Option<Uuid>, AuthError> {
    bearer_token(headers).map(|token| keys.verify(token).map(|c| c.sub)).transpose()
}

/// The author `id`, folded from their stream, if they exist and are active: whom a valid token may act as.
pub async fn active_author(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
) -> Result<Option<crate::domain::author::Author>, sqlx::Error> {
    Ok(crate::store::streams::load_author(conn, id).await?.filter(|a| a.active))
}

pub const ISSUER: &str = "pressroom";
pub const AUDIENCE: &str = "pressroom";
/// The session lifetime when `PRESSROOM_SESSION_TTL` is not set.
pub const DEFAULT_SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(3600);
const LEEWAY_SECONDS: u64 = 30;
/// How many verified tokens [`JwtKeys`] remembers (a few hundred bytes each); the memory is emptied when full.
const VERIFIED_TOKENS: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Not before: a token that is not valid yet is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("could not sign token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Signs and verifies session tokens with one shared secret.
///
/// Verified tokens are remembered by their exact text (clones share the memory): a client's next request
/// with the same token costs one hash lookup instead of an HMAC, two base64 decodes and three JSON parses
/// (a fifth of the command API's CPU per `POST /v1/posts`). Only what the token's own bytes decide is
/// remembered — signature, algorithm, issuer, audience, claims; expiry is checked again on every use.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens are issued for this long, and one that claims a longer life (`exp - iat`) is refused: a
    /// leaked secret cannot mint tokens that outlive the sessions we issue.
    lifetime: Duration,
    verified: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Box<str>, Claims>>>,
}

impl JwtKeys {
    pub fn new(secret: &SecretString, session_ttl: std::time::Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        JwtKeys {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            lifetime: Duration::from_std(session_ttl).unwrap_or(Duration::hours(1)),
            verified: Default::default(),
        }
    }

    /// A token for `author_id` valid for the session lifetime (`PRESSROOM_SESSION_TTL`).
    pub fn issue(&self, author_id: Uuid, role: Role, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>), AuthError> {
        let expires_at = now + self.lifetime;
        let claims = Claims {
            sub: author_id,
            role,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            nbf: None,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, expires_at))
    }

    /// Verifies signature, algorithm (HS256 only; `none` included in the refusals), issuer, audience, expiry,
    /// not-before, and that the token claims no longer a life than the sessions we issue.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_at(token, Utc::now().timestamp())
    }

    /// [`JwtKeys::verify`] with `now` (Unix seconds) deciding the expiry of a remembered token.
    fn verify_at(&self, token: &str, now: i64) -> Result<Claims, AuthError> {
        let remembered = self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(token).cloned();
        let claims = match remembered {
            Some(claims) => claims,
            None => {
                let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
                    .map(|d| d.claims)
                    .map_err(|_| AuthError::InvalidToken)?;
                if claims.exp - claims.iat > self.lifetime.num_seconds() {
                    return Err(AuthError::InvalidToken);
                }
                let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                if verified.len() >= VERIFIED_TOKENS {
                    verified.clear();
                }
                verified.insert(token.into(), claims.clone());
                claims
            }
        };
        // As jsonwebtoken decides: expired once `exp` is more than the leeway in the past.
        if claims.exp < now - LEEWAY_SECONDS as i64 {
            return Err(AuthError::InvalidToken);
        }
        Ok(claims)
    }
}

/// Password hashing (argon2, tens of milliseconds of CPU each) runs on the blocking pool, at most half
/// the cores at once: inline it would stall every request on its async worker, and unbounded a login
/// storm would take every core from the reads.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new((cores / 2).max(1))
    })
}

/// Runs `work` on the blocking pool once a hashing slot is free.
async fn off_the_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AuthError> {
    let _slot = hashing_slots().acquire().await.map_err(|_| AuthError::Hash("hashing is shut down".into()))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| AuthError::Hash(e.to_string()))
}

/// An argon2id PHC string for `password`.
pub async fn hash_password(password: &str) -> Result<String, AuthError> {
    let password = password.to_owned();
    off_the_runtime(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Hash(e.to_string()))
    })
    .await?
}

/// True when `password` matches `phc`. A malformed hash never matches.
pub async fn verify_password(password: &str, phc: &str) -> bool {
    let (password, phc) = (password.to_owned(), phc.to_owned());
    off_the_runtime(move || {
        PasswordHash::new(&phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Burns the same time as a real verification, so unknown emails are not distinguishable by timing.
pub async fn verify_password_dummy(password: &str) {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let phc = DUMMY.get_or_init(|| async { hash_password("pressroom-dummy-password").await.unwrap_or_default() }).await;
    verify_password(password, phc).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn hashing_leaves_the_async_thread_free_for_other_requests() {
        let ticks = std::sync::atomic::AtomicU32::new(0);
        let ticker = async {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        };
        let hashing = async {
            let phc = hash_password("correct horse battery").await;
            let ok = verify_password("correct horse battery", phc.as_deref().unwrap_or("")).await;
            let wrong = verify_password("wrong", phc.as_deref().unwrap_or("")).await;
            (ok, wrong)
        };
        let (ok, wrong) = tokio::select! {
            r = hashing => r,
            _ = ticker => unreachable!("the ticker never ends"),
        };
        assert!(ok && !wrong);
        // On this one-thread runtime, a hash computed inline would have let the ticker run zero times.
        assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) >= 3, "the runtime thread was blocked");
    }

    fn keys(secret: &str) -> JwtKeys {
        JwtKeys::new(&SecretString::from(secret.to_string()), DEFAULT_SESSION_TTL)
    }

    #[test]
    fn a_token_verifies_with_its_key_and_not_with_another() {
        let k = keys("secret-a");
        let (token, _) = k.issue(Uuid::now_v7(), Role::Author, Utc::now()).unwrap_or_default();
        assert!(k.verify(&token).is_ok());
        assert!(keys("secret-b").verify(&token).is_err());
    }

    #[test]
    fn expired_tokens_and_alg_none_are_refused() {
        let k = keys("s");
        let (old, _) = k.issue(Uuid::now_v7(), Role::Admin, Utc::now() - Duration::hours(2)).unwrap_or_default();
        assert!(k.verify(&old).is_err());
        // {"alg":"none","typ":"JWT"} . valid-looking claims . empty signature
        use base64_like::encode;
        let claims = format!(
            r#"{{"sub":"{}","role":"admin","iss":"pressroom","aud":"pressroom","iat":0,"exp":{}}}"#,
            Uuid::now_v7(),
            Utc::now().timestamp() + 3600
        );
        let none = format!("{}.{}.", encode(r#"{"alg":"none","typ":"JWT"}"#), encode(&claims));
        assert!(k.verify(&none).is_err());
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_tampered_one_is_not_taken_for_it() {
        let k = keys("s");
        let now = Utc::now();
        let (token, _) = k.issue(Uuid::now_v7(), Role::Editor, now).unwrap_or_default();
        assert!(k.verify(&token).is_ok(), "verified and remembered");
        assert!(k.clone().verify(&token).is_ok(), "clones share the memory");
        let expiry = (now + Duration::hours(1)).timestamp();
        assert!(k.verify_at(&token, expiry + LEEWAY_SECONDS as i64).is_ok(), "within the leeway");
        assert!(k.verify_at(&token, expiry + LEEWAY_SECONDS as i64 + 1).is_err(), "expired, remembered or not");
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(k.verify(&tampered).is_err(), "another text is verified on its own");
        assert!(keys("other").verify(&token).is_err(), "the memory belongs to one key");
    }

    #[test]
    fn tokens_not_valid_yet_or_claiming_a_longer_life_than_a_session_are_refused() {
        let secret = "a-secret-of-at-least-32-bytes-for-tests";
        let k = keys(secret);
        let now = Utc::now().timestamp();
        let sign = |iat: i64, exp: i64, nbf: Option<i64>| {
            let claims = Claims {
                sub: Uuid::now_v7(),
                role: Role::Admin,
                iss: ISSUER.into(),
                aud: AUDIENCE.into(),
                iat,
                exp,
                nbf,
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
                .unwrap_or_default()
        };
        assert!(k.verify(&sign(now, now + 3600, None)).is_ok(), "a session-long token");
        assert!(k.verify(&sign(now - 10, now + 3600 * 24 * 365, None)).is_err(), "a year-long token");
        assert!(k.verify(&sign(now, now + 3601, None)).is_err(), "one second over the session lifetime");
        assert!(k.verify(&sign(now, now + 600, Some(now + 300))).is_err(), "not valid for five minutes yet");
        assert!(k.verify(&sign(now, now + 600, Some(now - 5))).is_ok(), "a past not-before is fine");
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password("correct horse").await.unwrap_or_default();
        assert!(verify_password("correct horse", &h).await);
        assert!(!verify_password("wrong", &h).await);
        assert!(!verify_password("correct horse", "not-a-hash").await);
    }

    mod base64_like {
        /// URL-safe base64 without padding (enough for a test token).
        pub fn encode(s: &str) -> String {
            const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let b = s.as_bytes();
            let mut out = String::new();
            for chunk in b.chunks(3) {
                let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
                for i in 0..=chunk.len() {
                    out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }

    #[test]
    fn bearer_tokens_are_found_whatever_the_scheme_case() {
        let header = |v: &'static str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(axum::http::header::AUTHORIZATION, axum::http::HeaderValue::from_static(v));
            h
        };
        assert_eq!(bearer_token(&header("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&header("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&header("BEARER abc")), Some("abc"));
        assert_eq!(bearer_token(&header("Basic abc")), None);
        assert_eq!(bearer_token(&header("Bearer ")), None);
        assert_eq!(bearer_token(&axum::http::HeaderMap::new()), None);
    }
}
