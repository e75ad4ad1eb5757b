//! CTC decoding of the model output and confidence calibration.
//!
//! The network emits, for each output step (one per 4 input columns), probabilities over 13
//! classes (blank, `0`-`9`, `.`, `-`). We take the best path (arg-max per step, collapse
//! repeats, drop blanks) and keep the evidence a calibrator needs: the path log-probability,
//! the least certain step, the least certain emitted character and the strongest decimal
//! point the path did not emit. [`Reader::read`](crate::Reader::read) combines three passes
//! (the crop and two stretched variants) into [`Features`]; the calibrated confidence is a
//! logistic score of those features mapped through a monotone table fitted on held-out
//! synthetic data (`training/calibrate.py`, stored in `model/calibration.json`), capped for
//! strings that no scale displays (two points, a minus sign inside the number, ...).

use serde::Deserialize;

/// Characters of CTC classes 1..=12 (class 0 is the blank).
pub const ALPHABET: &[u8; 12] = b"0123456789.-";
/// CTC class of the decimal point.
const POINT: usize = 11;

/// Result of decoding one pass of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub text: String,
    /// Log-probability of the best path (sum over steps of ln max p).
    pub log_prob: f32,
    /// Output steps where each emitted character starts.
    pub columns: Vec<usize>,
    /// Smallest per-step maximum probability (the least certain step, blanks included).
    pub min_step: f32,
    /// Smallest peak probability among the emitted characters (1 if none).
    pub min_char: f32,
    /// Largest probability of a decimal point at a step where the path emits none (and
    /// that is not next to an emitted point): evidence of a missed point.
    pub point_alt: f32,
    /// Output steps that cover the content (the rest of the input is zero padding); all
    /// steps unless the caller knows the content width.
    pub steps: usize,
}

impl Decoded {
    /// Nothing read.
    pub fn empty() -> Decoded {
        Decoded {
            text: String::new(),
            log_prob: 0.0,
            columns: vec![],
            min_step: 0.0,
            min_char: 0.0,
            point_alt: 0.0,
            steps: 0,
        }
    }
}

/// Greedy CTC decoding of `probs` laid out (steps, classes).
pub fn greedy(probs: &[f32], classes: usize) -> Decoded {
    let mut text = String::new();
    let mut columns = Vec::new();
    let mut log_prob = 0.0f32;
    let mut min_step = 1.0f32;
    let mut prev = 0usize;
    let mut best_of = Vec::new();
    // peak probability of the character being emitted (over its run of steps)
    let mut char_peaks: Vec<f32> = Vec::new();
    for (t, row) in probs.chunks_exact(classes).enumerate() {
        let (mut best, mut bp) = (0usize, f32::MIN);
        for (k, &p) in row.iter().enumerate() {
            if p > bp {
                best = k;
                bp = p;
            }
        }
        best_of.push(best);
        log_prob += bp.max(1e-12).ln();
        min_step = min_step.min(bp);
        if best != 0 && best != prev {
            if let Some(&c) = ALPHABET.get(best - 1) {
                text.push(char::from(c));
                columns.push(t);
                char_peaks.push(bp);
            }
        } else if best != 0 && best == prev {
            if let Some(last) = char_peaks.last_mut() {
                *last = last.max(bp);
            }
        }
        prev = best;
    }
    let min_char = char_peaks.iter().copied().fold(1.0f32, f32::min);
    let mut point_alt = 0.0f32;
    if classes > POINT {
        for (t, row) in probs.chunks_exact(classes).enumerate() {
            let near_point =
                (t.saturating_sub(1)..=t + 1).any(|u| best_of.get(u).is_some_and(|&b| b == POINT));
            if !near_point {
                point_alt = point_alt.max(row[POINT]);
            }
        }
    }
    Decoded {
        text,
        log_prob,
        columns,
        min_step: if probs.is_empty() { 0.0 } else { min_step },
        min_char,
        point_alt,
        steps: probs.len() / classes.max(1),
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

/// Evidence for one reading (three network passes combined), the calibrator's input.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Features {
    /// Best-path log-probability of the pass that gave the result.
    pub lp: f32,
    /// ln of its least certain step.
    pub ln_min_step: f32,
    /// ln of its least certain character.
    pub ln_min_char: f32,
    /// Its strongest missed decimal point (probability).
    pub point_alt: f32,
    /// How many of the other two passes read the same text (0..=2).
    pub agree: f32,
    /// Characters in the text.
    pub len: f32,
    /// Lowest best-path log-probability among the passes that agree with the result.
    pub lp_min: f32,
    /// Output steps before the first character, in input heights (8 steps), at most 3: a
    /// reading that starts at the very edge of the crop may have lost a cut digit.
    pub edge_left: f32,
    /// Output steps after the start of the last character, in input heights, at most 3.
    pub edge_right: f32,
}

/// Names of [`Features::vector`] entries, as stored in `calibration.json`.
pub const FEATURE_NAMES: [&str; 10] = [
    "lp",
    "ln_min_step",
    "ln_min_char",
    "point_alt",
    "agree",
    "len",
    "lp_min",
    "edge_left",
    "edge_right",
    "ln_point_alt",
];

impl Features {
    /// The evidence of one pass alone (agreement counts as none).
    pub fn single(d: &Decoded) -> Features {
        Features {
            lp: d.log_prob.max(-30.0),
            ln_min_step: d.min_step.max(1e-6).ln().max(-10.0),
            ln_min_char: d.min_char.max(1e-6).ln().max(-10.0),
            point_alt: d.point_alt,
            agree: 0.0,
            len: d.text.chars().count() as f32,
            lp_min: d.log_prob.max(-30.0),
            edge_left: d
                .columns
                .first()
                .map_or(0.0, |&c| (c as f32 / 8.0).min(3.0)),
            edge_right: d.columns.last().map_or(0.0, |&c| {
                (d.steps.saturating_sub(c + 1) as f32 / 8.0).min(3.0)
            }),
        }
    }

    /// The missed-point evidence on a log scale (floored at 1e-6). A point the path did not
    /// emit matters from very small probabilities on (1e-4 against 1e-6 already tells a
    /// faint point from none), which a linear weight on `point_alt` cannot express; with it
    /// the calibration accepts twice the crops at the same wrong-rate.
    pub fn ln_point_alt(&self) -> f32 {
        self.point_alt.max(1e-6).ln()
    }

    /// Feature vector in the order of [`FEATURE_NAMES`].
    pub fn vector(&self) -> [f32; 10] {
        [
            self.lp,
            self.ln_min_step,
            self.ln_min_char,
            self.point_alt,
            self.agree,
            self.len,
            self.lp_min,
            self.edge_left,
            self.edge_right,
            self.ln_point_alt(),
        ]
    }
}

/// Calibration fitted in training: score `z = w · features + b`, confidence = monotone
/// piecewise-linear map of `z` (`knots`, sorted by `z`), capped for implausible strings.
#[derive(Debug, Clone, Deserialize)]
pub struct Calibration {
    /// Feature names, must equal [`FEATURE_NAMES`].
    pub features: Vec<String>,
    pub weights: Vec<f32>,
    pub bias: f32,
    /// `(z, confidence)` pairs, `z` increasing and confidence non-decreasing.
    pub knots: Vec<(f32, f32)>,
    /// Confidence cap for implausible strings (and for an empty reading).
    #[serde(default = "default_cap")]
    pub implausible_cap: f32,
    /// Photos (no region given): confidence cap when a region grown sideways around the
    /// chosen one reads differently (possible fragment of the number).
    #[serde(default = "default_grown_cap")]
    pub photo_disagree_cap: f32,
    /// Photos: extra score offset (added to `z`), fitted on synthetic phone scenes.
    #[serde(default)]
    pub photo_offset: f32,
}

fn default_cap() -> f32 {
    0.3
}

fn default_grown_cap() -> f32 {
    0.5
}

impl Calibration {
    /// Checks the stored calibration against this build's features.
    pub fn validate(&self) -> Result<(), String> {
        if self.features.len() != FEATURE_NAMES.len()
            || self.features.iter().zip(FEATURE_NAMES).any(|(a, b)| a != b)
        {
            return Err(format!(
                "calibration features {:?} differ from {FEATURE_NAMES:?}",
                self.features
            ));
        }
        if self.weights.len() != FEATURE_NAMES.len() {
            return Err("calibration weights do not match the features".into());
        }
        if self.knots.len() < 2
            || self
                .knots
                .windows(2)
                .any(|w| w[1].0 <= w[0].0 || w[1].1 < w[0].1)
        {
            return Err("calibration knots must be increasing".into());
        }
        Ok(())
    }

    /// Logistic score of the features.
    pub fn score(&self, f: &Features) -> f32 {
        self.bias
            + self
                .weights
                .iter()
                .zip(f.vector())
                .map(|(w, x)| w * x)
                .sum::<f32>()
    }

    /// Monotone map of a score to a confidence (clamped at the ends of the table).
    pub fn map(&self, z: f32) -> f32 {
        let k = &self.knots;
        let (Some(first), Some(last)) = (k.first(), k.last()) else {
            return 0.0;
        };
        if z.is_nan() || z <= first.0 {
            return first.1;
        }
        if z >= last.0 {
            return last.1;
        }
        for w in k.windows(2) {
            let ((z0, c0), (z1, c1)) = (w[0], w[1]);
            if z <= z1 {
                return c0 + (c1 - c0) * (z - z0) / (z1 - z0);
            }
        }
        last.1
    }

    /// Calibrated probability that `text` is exactly right, given its evidence; `offset`
    /// is added to the score (0 for regions, [`Calibration::photo_offset`] for photos).
    pub fn confidence(&self, text: &str, f: &Features, offset: f32) -> f32 {
        let p = self.map(self.score(f) + offset);
        if plausible(text) {
            p
        } else {
            p.min(self.implausible_cap)
        }
    }

    /// A neutral calibration (monotone in the best-path log-probability) for experiments
    /// with another model before `calibrate.py` has been run.
    pub fn neutral() -> Calibration {
        Calibration {
            features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            weights: vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            bias: 0.0,
            knots: vec![(-30.0, 0.0), (0.0, 0.84)],
            implausible_cap: 0.3,
            photo_disagree_cap: 0.5,
            photo_offset: 0.0,
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
        assert!((d.min_step - 1.0).abs() < 1e-6 && (d.min_char - 1.0).abs() < 1e-6);
        assert_eq!(d.point_alt, 0.0);
    }

    #[test]
    fn records_uncertain_steps_and_missed_points() {
        // step 2 is a blank at 0.6 with a point at 0.4 (a missed point)
        let mut p = onehot(&[2, 0, 0, 0, 3]);
        p[2 * 13] = 0.6;
        p[2 * 13 + 11] = 0.4;
        let d = greedy(&p, 13);
        assert_eq!(d.text, "12");
        assert!((d.min_step - 0.6).abs() < 1e-6);
        assert!((d.point_alt - 0.4).abs() < 1e-6);
        assert!((d.min_char - 1.0).abs() < 1e-6);
    }

    #[test]
    fn plausibility() {
        for ok in ["0", "0148.30", "-2.5", "12.345", "----", "-0.54"] {
            assert!(plausible(ok), "{ok}");
        }
        for bad in ["", ".5", "5.", "1.2.3", "1-2", "-.", "-.5"] {
            assert!(!plausible(bad), "{bad}");
        }
    }

    #[test]
    fn missed_point_evidence_is_on_a_log_scale_with_a_floor() {
        let f = |p: f32| Features {
            point_alt: p,
            ..Features::default()
        };
        assert!((f(1e-4).ln_point_alt() - 1e-4f32.ln()).abs() < 1e-5);
        // no point at all, or a rounding to zero, reads as the floor, not as -infinity
        assert_eq!(f(0.0).ln_point_alt(), 1e-6f32.ln());
        assert_eq!(f(1e-9).ln_point_alt(), 1e-6f32.ln());
        let v = f(0.5).vector();
        assert_eq!(v.len(), FEATURE_NAMES.len());
        assert_eq!(v[FEATURE_NAMES.len() - 1], 0.5f32.ln());
    }

    #[test]
    fn calibration_is_monotone_and_capped() {
        let c = Calibration::neutral();
        assert!(c.validate().is_ok());
        let hi = Features {
            lp: -0.01,
            ..Features::default()
        };
        let lo = Features { lp: -3.0, ..hi };
        assert!(c.confidence("12.5", &hi, 0.0) > c.confidence("12.5", &lo, 0.0));
        assert!(c.confidence("1.2.5", &hi, 0.0) <= 0.3);
        assert!(c.confidence("", &hi, 0.0) <= 0.3);
        assert_eq!(c.map(-100.0), 0.0);
        assert!((c.map(5.0) - 0.84).abs() < 1e-6);
        assert!(c.map(f32::NAN) == 0.0);
        let mut bad = Calibration::neutral();
        bad.knots = vec![(0.0, 0.5), (-1.0, 0.6)];
        assert!(bad.validate().is_err());
    }
}
