//! Reading a scale's display from a photo: one small trait, two providers.
//!
//! - [`builtin`] (the default): METCON's own seven-segment reader (`metcon-ocr`, a CNN with
//!   CTC run by tract), embedded in the binary; nothing is downloaded.
//! - [`http`]: a private OCR endpoint speaking the JSON contract in `docs/ocr-http.md`.
//!
//! Whatever the provider, the rules are the same (seed pattern 5): a number read with a
//! calibrated confidence of at least [`ACCEPT_CONFIDENCE`] may decide a mass check; below
//! that the operator is asked for a re-take; no number at all allows a manual entry, which is
//! flagged for approval. [`classify`] is the one place those rules live.

pub mod builtin;
pub mod http;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use rust_decimal::Decimal;

use crate::config::{OcrConfig, OcrProvider};
use crate::photos::Image;
use crate::store::photos::{OcrOutcome, OcrResult, Region};

/// Readings at or above this calibrated confidence are accepted without a re-take.
pub const ACCEPT_CONFIDENCE: Decimal = Decimal::from_parts(85, 0, 0, false, 2);

/// What a provider read.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayText {
    /// The digit string as displayed, `""` when nothing was read.
    pub text: String,
    /// Calibrated probability that `text` is exactly right, 0…1.
    pub confidence: f64,
    /// Where the display was found, if the provider says.
    pub region: Option<Region>,
}

#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error("the OCR service did not answer within {0} ms")]
    Timeout(u64),
    #[error("the OCR service failed: {0}")]
    Provider(String),
    #[error("the image cannot be read: {0}")]
    Image(String),
}

/// A display reader. `roi` is a fixed camera's display region; without it the provider
/// finds the display itself (operator photos).
#[async_trait]
pub trait DisplayReader: Send + Sync + std::fmt::Debug {
    /// `builtin` or `http`, recorded with every result.
    fn name(&self) -> &'static str;
    async fn read(&self, image: &Image, roi: Option<Region>) -> Result<DisplayText, OcrError>;
}

/// The provider the configuration asks for.
pub fn from_config(config: &OcrConfig) -> anyhow::Result<Arc<dyn DisplayReader>> {
    Ok(match config.provider {
        OcrProvider::Builtin => Arc::new(builtin::Builtin::load()?),
        OcrProvider::Http => Arc::new(http::HttpReader::new(config)?),
    })
}

/// The exact decimal of a display string and its number of decimals: `"0148.30"` →
/// (148.30, 2); `"-2.5"` → (−2.5, 1); anything that is not a plain number → `None`.
/// Other providers' text is held to the built-in reader's alphabet (digits, `.`, a leading
/// `-`) and then parsed by the built-in reader's own parser, so both mean the same.
pub fn parse_display(text: &str) -> Option<(Decimal, u32)> {
    let t = text.trim();
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return None;
    }
    match metcon_ocr::parse_value(t) {
        (Some(v), Some(d)) => Some((v, d)),
        _ => None,
    }
}

/// Applies the acceptance rules to what a provider said (or its failure).
pub fn classify(
    provider: &str,
    outcome: Result<DisplayText, OcrError>,
    started: Instant,
) -> OcrResult {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(t) => {
            let confidence = Decimal::from_f64_retain(t.confidence.clamp(0.0, 1.0))
                .unwrap_or_default()
                .round_dp(4)
                .normalize();
            let parsed = parse_display(&t.text);
            let outcome = match parsed {
                Some(_) if confidence >= ACCEPT_CONFIDENCE => OcrOutcome::Accepted,
                Some(_) => OcrOutcome::LowConfidence,
                None => OcrOutcome::Unreadable,
            };
            OcrResult {
                provider: provider.to_string(),
                outcome,
                raw_text: t.text,
                value: parsed.map(|p| p.0),
                decimals: parsed.map(|p| p.1),
                confidence,
                region: t.region,
                elapsed_ms,
                error: None,
            }
        }
        Err(e) => OcrResult {
            provider: provider.to_string(),
            outcome: OcrOutcome::Failed,
            raw_text: String::new(),
            value: None,
            decimals: None,
            confidence: Decimal::ZERO,
            region: None,
            elapsed_ms,
            error: Some(e.to_string()),
        },
    }
}

/// What an accepted reading of a display says in `unit`: the value and the resolution of
/// its last digit, as the cross-check compares them; `None` unless OCR accepted a number
/// with its decimals (and it is not negative).
pub fn displayed(
    o: &OcrResult,
    unit: metcon_shared::mass::MassUnit,
) -> Option<(metcon_shared::mass::Mass, metcon_shared::mass::Mass)> {
    use metcon_shared::mass::Mass;
    let (OcrOutcome::Accepted, Some(value), Some(decimals)) = (o.outcome, o.value, o.decimals)
    else {
        return None;
    };
    let display = Mass::new(value, unit).ok()?;
    let resolution = Mass::new(Decimal::new(1, decimals.min(10)), unit).ok()?;
    Some((display, resolution))
}

/// Reads `image` with `reader` and classifies the answer.
pub async fn read_and_classify(
    reader: &dyn DisplayReader,
    image: &Image,
    roi: Option<Region>,
) -> OcrResult {
    let started = Instant::now();
    let outcome = reader.read(image, roi).await;
    classify(reader.name(), outcome, started)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str, c: f64) -> Result<DisplayText, OcrError> {
        Ok(DisplayText {
            text: t.into(),
            confidence: c,
            region: None,
        })
    }

    #[test]
    fn display_strings_parse_exactly_with_their_resolution() {
        assert_eq!(parse_display("0148.30"), Some((Decimal::new(14830, 2), 2)));
        assert_eq!(parse_display("-2.5"), Some((Decimal::new(-25, 1), 1)));
        assert_eq!(parse_display("150"), Some((Decimal::new(150, 0), 0)));
        for bad in ["", "-", "----", "1.2.3", "12.", ".5", "1e3", "12 g", "+5"] {
            assert_eq!(parse_display(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_acceptance_threshold_is_inclusive_and_numbers_are_required() {
        let t0 = Instant::now();
        assert_eq!(
            classify("t", text("148.3", 0.85), t0).outcome,
            OcrOutcome::Accepted
        );
        assert_eq!(
            classify("t", text("148.3", 0.8499), t0).outcome,
            OcrOutcome::LowConfidence
        );
        assert_eq!(
            classify("t", text("----", 0.99), t0).outcome,
            OcrOutcome::Unreadable
        );
        assert_eq!(
            classify("t", text("", 0.99), t0).outcome,
            OcrOutcome::Unreadable
        );
        let failed = classify("t", Err(OcrError::Timeout(5000)), t0);
        assert_eq!(failed.outcome, OcrOutcome::Failed);
        assert!(failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("5000 ms")));
        let r = classify("t", text("0148.30", 0.97), t0);
        assert_eq!(
            (r.value, r.decimals),
            (Some(Decimal::new(14830, 2)), Some(2))
        );
        assert_eq!(r.confidence, Decimal::new(97, 2));
    }
}
