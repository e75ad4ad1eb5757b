//! A private OCR endpoint. The contract (also in `docs/ocr-http.md`):
//!
//! `POST {url}` with `Content-Type: application/json` and the configured auth header:
//! `{"image_base64": "<the photo's bytes>", "content_type": "image/jpeg", "roi": {"x":…,"y":…,"w":…,"h":…} | null}`.
//! A 200 answer is `{"text": "0148.30", "confidence": 0.97, "region": {…} | null}`: the digit
//! string as displayed (no unit; `""` if nothing was read) and the calibrated probability that
//! it is exactly right. Anything else — another status, malformed JSON, a confidence outside
//! 0…1, no answer within the timeout — is a failure, treated like an unreadable photo.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{DisplayReader, DisplayText, OcrError};
use crate::config::OcrConfig;
use crate::photos::Image;
use crate::store::photos::Region;

/// Largest answer read from the endpoint.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, Serialize)]
pub struct OcrRequest<'a> {
    pub image_base64: String,
    pub content_type: &'a str,
    pub roi: Option<Region>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcrAnswer {
    pub text: String,
    pub confidence: f64,
    #[serde(default)]
    pub region: Option<Region>,
}

pub struct HttpReader {
    client: reqwest::Client,
    url: reqwest::Url,
    auth: Option<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    timeout_ms: u64,
}

impl std::fmt::Debug for HttpReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The auth header is a secret: never printed.
        f.debug_struct("HttpReader")
            .field("url", &self.url.as_str())
            .field("auth", &self.auth.as_ref().map(|(n, _)| n.as_str()))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// `Name: value` → a header pair.
fn parse_header(
    h: &str,
) -> anyhow::Result<(reqwest::header::HeaderName, reqwest::header::HeaderValue)> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("ocr.auth_header must look like \"Name: value\""))?;
    let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| anyhow::anyhow!("ocr.auth_header has an invalid header name"))?;
    let mut value = reqwest::header::HeaderValue::from_str(value.trim())
        .map_err(|_| anyhow::anyhow!("ocr.auth_header has an invalid value"))?;
    value.set_sensitive(true);
    Ok((name, value))
}

impl HttpReader {
    pub fn new(config: &OcrConfig) -> anyhow::Result<HttpReader> {
        let url = config
            .url
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("ocr.provider = \"http\" needs ocr.url"))?;
        let url =
            reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("ocr.url is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("ocr.url must be http:// or https://");
        }
        let auth = config
            .auth_header
            .as_deref()
            .map(parse_header)
            .transpose()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()?;
        Ok(HttpReader {
            client,
            url,
            auth,
            timeout_ms: config.timeout_ms,
        })
    }
}

#[async_trait]
impl DisplayReader for HttpReader {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn read(&self, image: &Image, roi: Option<Region>) -> Result<DisplayText, OcrError> {
        let body = OcrRequest {
            image_base64: base64::engine::general_purpose::STANDARD.encode(&image.bytes),
            content_type: image.content_type,
            roi,
        };
        let mut req = self.client.post(self.url.clone()).json(&body);
        if let Some((n, v)) = &self.auth {
            req = req.header(n.clone(), v.clone());
        }
        let timeout = |e: reqwest::Error| {
            if e.is_timeout() {
                OcrError::Timeout(self.timeout_ms)
            } else {
                // without the URL's query or credentials
                OcrError::Provider(e.without_url().to_string())
            }
        };
        let resp = req.send().await.map_err(timeout)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(OcrError::Provider(format!("it answered {status}")));
        }
        let bytes = resp.bytes().await.map_err(timeout)?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(OcrError::Provider("its answer is too large".into()));
        }
        let answer: OcrAnswer = serde_json::from_slice(&bytes)
            .map_err(|e| OcrError::Provider(format!("its answer is not the contract: {e}")))?;
        if !(0.0..=1.0).contains(&answer.confidence) {
            return Err(OcrError::Provider(format!(
                "its confidence {} is outside 0..1",
                answer.confidence
            )));
        }
        Ok(DisplayText {
            text: answer.text,
            confidence: answer.confidence,
            region: answer.region,
        })
    }
}
