//! Photos as immutable evidence, stored by their SHA-256.
//!
//! One small trait with a local-folder backend (the embedded default, [`local`]) and an
//! S3-compatible one ([`s3`]); which one is configuration (`[photos]`), not code. A blob's name is the hex SHA-256
//! of its bytes, so storing the same photo twice is harmless and a stored photo can always
//! be checked against the digest a signed reading carries.

pub mod local;
pub mod s3;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{0:?} is not a SHA-256 in lowercase hex")]
    BadName(String),
    #[error("the bytes do not hash to {0}")]
    DigestMismatch(String),
    #[error("blob storage failure: {0}")]
    Backend(String),
}

/// Checks that `name` looks like a SHA-256 (64 lowercase hex digits).
pub fn check_name(name: &str) -> Result<(), BlobError> {
    if name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(BlobError::BadName(name.to_string()))
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under their SHA-256 (which must equal `sha256`), durably. Storing an
    /// existing blob again is a no-op.
    async fn put(&self, sha256: &str, bytes: &[u8], content_type: &str) -> Result<(), BlobError>;
    async fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, BlobError>;
    async fn exists(&self, sha256: &str) -> Result<bool, BlobError>;
    /// A URL the store itself serves the blob at for `ttl` (S3 presigning); `None` when
    /// METCON serves it (the local folder, through signed URLs).
    async fn presigned_url(
        &self,
        _sha256: &str,
        _ttl: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        Ok(None)
    }
}
