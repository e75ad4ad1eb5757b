//! Short-lived signed URLs for photos in the local folder (S3 presigns its own).
//!
//! `GET /api/photos/{sha256}?expires={unix}&sig={hex}` where `sig` is
//! HMAC-SHA256(key, "photo:{sha256}:{expires}") with a key derived from the token secret.
//! Whoever holds the URL may fetch that one photo until it expires, which is what an `<img>`
//! tag needs; the URL is only handed to a signed-in user allowed to see the batch.

use ring::hmac;
use time::OffsetDateTime;

/// Signs and checks photo URLs.
#[derive(Clone)]
pub struct UrlSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(<key>)")
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the photo link has expired; reload the page")]
    Expired,
    #[error("the photo link is not valid")]
    BadSignature,
}

impl UrlSigner {
    /// Derives its own key from the token secret, so a photo signature can never be
    /// replayed as anything else.
    pub fn new(token_secret: &[u8]) -> UrlSigner {
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, token_secret),
            b"metcon photo url key v1",
        );
        UrlSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    fn message(sha256: &str, expires: i64) -> String {
        format!("photo:{sha256}:{expires}")
    }

    /// The query string (`expires=…&sig=…`) for `sha256`, valid until `expires`.
    pub fn sign(&self, sha256: &str, expires: OffsetDateTime) -> String {
        let e = expires.unix_timestamp();
        let sig = hex::encode(hmac::sign(&self.key, Self::message(sha256, e).as_bytes()));
        format!("expires={e}&sig={sig}")
    }

    /// Checks a signature in constant time, then the expiry.
    pub fn verify(
        &self,
        sha256: &str,
        expires: i64,
        sig: &str,
        now: OffsetDateTime,
    ) -> Result<(), UrlError> {
        let sig = hex::decode(sig).map_err(|_| UrlError::BadSignature)?;
        hmac::verify(&self.key, Self::message(sha256, expires).as_bytes(), &sig)
            .map_err(|_| UrlError::BadSignature)?;
        if now.unix_timestamp() > expires {
            return Err(UrlError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_url_opens_one_photo_until_it_expires() {
        let s = UrlSigner::new(b"0123456789abcdef0123456789abcdef");
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let sha = "ab".repeat(32);
        let q = s.sign(&sha, now + time::Duration::minutes(15));
        let (e, sig) = q
            .strip_prefix("expires=")
            .and_then(|r| r.split_once("&sig="))
            .expect("query");
        let e: i64 = e.parse().expect("expires");
        assert_eq!(s.verify(&sha, e, sig, now), Ok(()));
        assert_eq!(
            s.verify(&sha, e, sig, now + time::Duration::minutes(16)),
            Err(UrlError::Expired)
        );
        // Another photo, a longer expiry, a forged or garbled signature: refused.
        assert_eq!(
            s.verify(&"cd".repeat(32), e, sig, now),
            Err(UrlError::BadSignature)
        );
        assert_eq!(
            s.verify(&sha, e + 3600, sig, now),
            Err(UrlError::BadSignature)
        );
        assert_eq!(
            s.verify(&sha, e, &"00".repeat(32), now),
            Err(UrlError::BadSignature)
        );
        assert_eq!(s.verify(&sha, e, "zz", now), Err(UrlError::BadSignature));
        // Another server secret does not accept it.
        let other = UrlSigner::new(b"another secret another secret 123");
        assert_eq!(other.verify(&sha, e, sig, now), Err(UrlError::BadSignature));
    }
}
