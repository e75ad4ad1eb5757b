//! CTC decoding of the model output and confidence calibration.
//!
//! The network emits, for each of 64 columns, probabilities over 13 classes (blank,
//! `0`-`9`, `.`, `-`). We take the best path (arg-max per column, collapse repeats, drop
//! blanks) and its log-probability `lp = Σ ln max p`. The calibrated confidence is
//! `sigmoid(a · lp + b)` with `a`, `b` fitted by logistic regression on a held-out synthetic
//! set (`training/calibrate.py`, stored in `model/calibration.json`), then capped for strings
//! that no scale displays (two points, a minus sign inside the number, ...).

use serde::Deserialize;

/// Characters of CTC classes 1..=12 (class 0 is the blank).
pub const ALPHABET: &[u8; 12] = b"0123456789.-";

/// Platt-scaling parameters fitted in training.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Calibration {
    pub a: f32,
    pub b: f32,
    /// Confidence cap for implausible strings.
    #[serde(default = "default_cap")]
    pub implausible_cap: f32,
}

fn default_cap() -> f32 {
    0.3
}

/// Result of decoding one crop.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub text: String,
    /// Log-probability of the best path.
    pub log_prob: f32,
    /// Columns (output steps) where each emitted character peaks.
    pub columns: Vec<usize>,
}

/// Greedy CTC decoding of `probs` laid out (steps, classes).
pub fn greedy(probs: &[f32], classes: usize) -> Decoded {
    let mut text = String::new();
    let mut columns = Vec::new();
    let mut log_prob = 0.0f32;
    let mut prev = 0usize;
    for (t, row) in probs.chunks_exact(classes).enumerate() {
        let (mut best, mut bp) = (0usize, f32::MIN);
        for (k, &p) in row.iter().enumerate() {
            if p > bp {
                best = k;
                bp = p;
            }
        }
        log_prob += bp.max(1e-12).ln();
        if best != 0 && best != prev {
            if let Some(&c) = ALPHABET.get(best - 1) {
                text.push(char::from(c));
                columns.push(t);
            }
        }
        prev = best;
    }
    Decoded {
        text,
        log_prob,
        columns,
    }
}

/// Whether a scale could display `text`: digits with at most one point that is neither first
/// nor last, and a minus sign only in front (or a row of dashes, shown while unstable).
pub fn plausible(text: &str) -> bool {
    if text.is_empty() {
        return false;
    }
    if text.bytes().all(|c| c == b'-') {
        return true;
    }
    let body = text.strip_prefix('-').unwrap_or(text);
    if body.is_empty() || body.contains('-') {
        return false;
    }
    let points = body.bytes().filter(|&c| c == b'.').count();
    if points > 1 || body.starts_with('.') || body.ends_with('.') {
        return false;
    }
    body.bytes().any(|c| c.is_ascii_digit())
}

impl Calibration {
    /// Calibrated probability that `d.text` is exactly right.
    pub fn confidence(&self, d: &Decoded) -> f32 {
        let z = self.a * d.log_prob + self.b;
        let p = 1.0 / (1.0 + (-z).exp());
        if plausible(&d.text) {
            p
        } else {
            p.min(self.implausible_cap)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onehot(seq: &[usize]) -> Vec<f32> {
        let mut v = vec![0.0; seq.len() * 13];
        for (t, &k) in seq.iter().enumerate() {
            v[t * 13 + k] = 1.0;
        }
        v
    }

    #[test]
    fn collapses_repeats_and_blanks() {
        // "1 1 _ 1 . 0 0" -> "11.0" ; classes: '1' = 2, '.' = 11, '0' = 1
        let d = greedy(&onehot(&[0, 2, 2, 0, 2, 11, 1, 1, 0]), 13);
        assert_eq!(d.text, "11.0");
        assert_eq!(d.columns, vec![1, 4, 5, 6]);
        assert!(d.log_prob.abs() < 1e-6);
    }

    #[test]
    fn plausibility() {
        for ok in ["0", "0148.30", "-2.5", "12.345", "----"] {
            assert!(plausible(ok), "{ok}");
        }
        for bad in ["", ".5", "5.", "1.2.3", "1-2", "-.", "-.5"] {
            assert!(!plausible(bad), "{bad}");
        }
    }

    #[test]
    fn calibration_is_monotone_and_capped() {
        let c = Calibration {
            a: 2.0,
            b: 5.0,
            implausible_cap: 0.3,
        };
        let hi = Decoded {
            text: "12.5".into(),
            log_prob: -0.01,
            columns: vec![],
        };
        let lo = Decoded {
            text: "12.5".into(),
            log_prob: -3.0,
            columns: vec![],
        };
        assert!(c.confidence(&hi) > c.confidence(&lo));
        let bad = Decoded {
            text: "1.2.5".into(),
            log_prob: -0.01,
            columns: vec![],
        };
        assert!(c.confidence(&bad) <= 0.3);
    }
}
