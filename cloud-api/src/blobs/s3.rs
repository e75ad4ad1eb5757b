//! Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph, s3s…): `{prefix}{aa}/{sha256}`.
//!
//! Path-style addressing and a custom endpoint for on-premises servers; region and
//! credentials from the configuration or the usual `AWS_*` environment variables. TLS is
//! rustls with ring (the crypto the rest of METCON already uses). Checksums are only sent
//! where S3 requires them, so servers without the newer flexible-checksum headers work.
//! Readers get presigned GET URLs; the bucket itself can stay private.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use super::{check_name, sha256_hex, BlobError, BlobStore};
use crate::config::S3Config;

#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

fn backend(e: impl std::fmt::Display) -> BlobError {
    BlobError::Backend(e.to_string())
}

/// A configured value, else the environment variable, else an error naming both.
fn setting(v: &Option<String>, env: &str, what: &str) -> anyhow::Result<String> {
    match v.clone().or_else(|| std::env::var(env).ok()) {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => anyhow::bail!("photos.s3.{what} is not set (nor {env})"),
    }
}

impl S3Blobs {
    pub fn new(c: &S3Config) -> anyhow::Result<S3Blobs> {
        if c.bucket.trim().is_empty() {
            anyhow::bail!("photos.s3.bucket is not set");
        }
        let region = setting(&c.region, "AWS_REGION", "region")?;
        let key_id = setting(&c.access_key_id, "AWS_ACCESS_KEY_ID", "access_key_id")?;
        let secret = setting(
            &c.secret_access_key,
            "AWS_SECRET_ACCESS_KEY",
            "secret_access_key",
        )?;
        let token = c
            .session_token
            .clone()
            .or_else(|| std::env::var("AWS_SESSION_TOKEN").ok());
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(Credentials::new(key_id, secret, token, None, "metcon"))
            .force_path_style(c.path_style)
            .http_client(http)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = c
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        {
            conf = conf.endpoint_url(endpoint);
        }
        Ok(S3Blobs {
            client: aws_sdk_s3::Client::from_conf(conf.build()),
            bucket: c.bucket.clone(),
            prefix: c.prefix.clone(),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{}/{}", self.prefix, &name[0..2], name)
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, sha256: &str, bytes: &[u8], content_type: &str) -> Result<(), BlobError> {
        check_name(sha256)?;
        if sha256_hex(bytes) != sha256 {
            return Err(BlobError::DigestMismatch(sha256.to_string()));
        }
        // Evidence is never rewritten: an existing object stays as it is.
        if self.exists(sha256).await? {
            return Ok(());
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(sha256))
            .content_type(content_type)
            .metadata("sha256", sha256)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(|e| backend(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, BlobError> {
        check_name(sha256)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(sha256))
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                let e = e.into_service_error();
                if e.is_no_such_key() {
                    return Ok(None);
                }
                return Err(backend(aws_sdk_s3::error::DisplayErrorContext(e)));
            }
        };
        let bytes = out.body.collect().await.map_err(backend)?.into_bytes();
        // What comes back is checked like what went in.
        if sha256_hex(&bytes) != sha256 {
            return Err(BlobError::DigestMismatch(sha256.to_string()));
        }
        Ok(Some(bytes.to_vec()))
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        check_name(sha256)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(sha256))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_not_found() {
                    Ok(false)
                } else {
                    Err(backend(aws_sdk_s3::error::DisplayErrorContext(e)))
                }
            }
        }
    }

    async fn presigned_url(
        &self,
        sha256: &str,
        ttl: Duration,
    ) -> Result<Option<String>, BlobError> {
        check_name(sha256)?;
        let cfg = PresigningConfig::expires_in(ttl).map_err(backend)?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(sha256))
            .presigned(cfg)
            .await
            .map_err(|e| backend(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(Some(req.uri().to_string()))
    }
}
