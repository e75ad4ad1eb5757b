//! METCON built-in seven-segment display reader.
//!
//! A small CNN with a CTC head (trained on synthetic scale displays, see
//! `training/README.md`) is embedded in the binary as ONNX and run with `tract-onnx`.
//! [`Reader::read`] reads either a fixed camera's region of interest or, for phone photos,
//! first localises the display among classical candidate regions ([`locate`]) and keeps the
//! most confident reading. Confidence is calibrated ([`decode`]): accept readings at
//! [`ACCEPT_THRESHOLD`] or above.

pub mod decode;
pub mod eval;
pub mod locate;
pub mod preprocess;

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::decode::{Calibration, Decoded, Features};
use crate::preprocess::{Gray, INPUT_H, INPUT_W};

/// Readings at or above this calibrated confidence may be accepted without review.
pub const ACCEPT_THRESHOLD: f32 = 0.85;

/// The embedded model (CNN + CTC, input 1x1x32xW with W a multiple of 32 in 64..=256,
/// output 1x(W/4)x13 probabilities).
static MODEL_ONNX: &[u8] = include_bytes!("../model/sevenseg.onnx");
/// Calibration fitted on held-out synthetic data.
static CALIBRATION_JSON: &str = include_str!("../model/calibration.json");

/// Smallest side (pixels) of a region that is worth reading.
pub const MIN_SIDE: u32 = 8;
/// Candidate regions tried in full photos.
const MAX_CANDIDATES: usize = 6;
const CLASSES: usize = 13;
/// Horizontal stretches of the three passes over a region: the crop as is, then narrower
/// and wider (a reading that changes with a 12 % stretch is not to be trusted).
pub const STRETCHES: [f64; 3] = [1.0, 0.88, 1.12];
/// Network input widths a plan is built for: 64, 96, ..., 256 (content width + padding,
/// rounded up, as in the training batches; see [`preprocess::bucket_width`]).
const WIDTHS: [usize; 7] = [64, 96, 128, 160, 192, 224, 256];

type Plan = TypedRunnableModel<TypedModel>;

/// Errors of the reader. Bad input never panics; it yields one of these.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error("model could not be loaded: {0}")]
    Model(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("image is empty or too small ({w}x{h}); at least {min}x{min} pixels are needed")]
    ImageTooSmall { w: u32, h: u32, min: u32 },
    #[error("region of interest {0:?} lies outside the image or is too small")]
    BadRoi(Roi),
}

/// A region of interest in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roi {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// One display reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisplayReading {
    /// Raw digit string as read ("" if nothing).
    pub text: String,
    /// Exact decimal parsed from `text` (leading zeros dropped, scale kept); `None` if `text`
    /// is not a number.
    pub value: Option<Decimal>,
    /// Calibrated probability that `text` is exactly right.
    pub confidence: f32,
    /// Where the display was read.
    pub region: Roi,
    /// Digits after the point (display resolution), if a number.
    pub decimals: Option<u32>,
}

/// How a reading came about: the calibrator's evidence and, for photos, the localisation
/// steps (used by `metcon-ocr features` to fit the calibration, and for diagnostics).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadTrace {
    pub features: Features,
    /// Texts of the three passes over the final region.
    pub pass_texts: Vec<String>,
    /// Photos only: candidate regions read.
    pub candidates: usize,
    /// Photos only: a region grown sideways around the chosen one read differently.
    pub grown_disagrees: bool,
    /// Photos only: the chosen region was replaced by a grown one (a fragment was found).
    pub grown_replaced: bool,
    /// Photos only: the calibrated confidence before the photo caps.
    pub region_confidence: f32,
}

/// The reader: one optimised network plan per input width and the calibration. Immutable
/// after construction, `Send + Sync`; build once and share behind an `Arc`.
#[derive(Debug)]
pub struct Reader {
    /// Input widths of `plans`, ascending.
    widths: Vec<usize>,
    plans: Vec<Plan>,
    calibration: Calibration,
}

impl Reader {
    /// Loads the model embedded in the binary (`include_bytes!`); no file or network access.
    pub fn builtin() -> Result<Reader, OcrError> {
        let calibration: Calibration = serde_json::from_str(CALIBRATION_JSON)
            .map_err(|e| OcrError::Model(format!("calibration: {e}")))?;
        Self::from_onnx(MODEL_ONNX, calibration)
    }

    /// Loads another ONNX model of the same input/output layout (for experiments; see
    /// [`Calibration::neutral`] for a model that has not been calibrated yet).
    pub fn from_onnx(onnx: &[u8], calibration: Calibration) -> Result<Reader, OcrError> {
        calibration.validate().map_err(OcrError::Model)?;
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(onnx))
            .map_err(|e| OcrError::Model(format!("{e:#}")))?;
        // One plan per width, all built now (a few ms each) so that reads never wait for an
        // optimisation and a broken model fails here. A model exported with a fixed 256-px
        // input (older exports) only gets the 256 plan; narrower plans are skipped then.
        let build = |w: usize| {
            model
                .clone()
                .with_input_fact(0, f32::fact([1, 1, INPUT_H, w]).into())
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
        };
        let mut widths = Vec::new();
        let mut plans = Vec::new();
        for w in WIDTHS {
            match build(w) {
                Ok(p) => {
                    widths.push(w);
                    plans.push(p);
                }
                Err(e) if w == INPUT_W => return Err(OcrError::Model(format!("{e:#}"))),
                Err(_) => {}
            }
        }
        Ok(Reader {
            widths,
            plans,
            calibration,
        })
    }

    /// The calibration in use.
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Reads the display in `image`. With `roi`, only that region (fixed cameras); without,
    /// localise the display first (phone photos).
    pub fn read(
        &self,
        image: &image::DynamicImage,
        roi: Option<Roi>,
    ) -> Result<DisplayReading, OcrError> {
        self.read_traced(image, roi).map(|(r, _)| r)
    }

    /// As [`Reader::read`], also returning the evidence behind the reading.
    pub fn read_traced(
        &self,
        image: &image::DynamicImage,
        roi: Option<Roi>,
    ) -> Result<(DisplayReading, ReadTrace), OcrError> {
        let (w, h) = (image.width(), image.height());
        if w < MIN_SIDE || h < MIN_SIDE {
            return Err(OcrError::ImageTooSmall {
                w,
                h,
                min: MIN_SIDE,
            });
        }
        match roi {
            Some(r) => {
                let r = clamp_roi(r, w, h).ok_or(OcrError::BadRoi(r))?;
                let crop = Gray::from_image(&image.crop_imm(r.x, r.y, r.w, r.h));
                let (d, f, texts) = self.read_region(&crop)?;
                let conf = self.calibration.confidence(&d.text, &f, 0.0);
                let trace = ReadTrace {
                    features: f,
                    pass_texts: texts,
                    region_confidence: conf,
                    ..ReadTrace::default()
                };
                Ok((reading(d, conf, r), trace))
            }
            None => {
                let gray = Gray::from_image(image);
                self.read_photo(&gray)
            }
        }
    }

    /// Recognises one crop with three passes (see [`STRETCHES`]) and returns the combined
    /// reading with its calibrated confidence.
    pub fn read_gray(&self, crop: &Gray) -> Result<(Decoded, f32), OcrError> {
        let (d, f, _) = self.read_region(crop)?;
        let c = self.calibration.confidence(&d.text, &f, 0.0);
        Ok((d, c))
    }

    /// Three passes over a region, combined: the text of the plain pass if a stretched pass
    /// agrees, else the text both stretched passes agree on, else the plain pass's.
    fn read_region(&self, crop: &Gray) -> Result<(Decoded, Features, Vec<String>), OcrError> {
        self.read_region_after(crop, None)
    }

    /// As [`Reader::read_region`], reusing the plain pass when the caller has already run it
    /// on exactly this crop (a photo's chosen candidate): one network pass saved.
    fn read_region_after(
        &self,
        crop: &Gray,
        plain: Option<Decoded>,
    ) -> Result<(Decoded, Features, Vec<String>), OcrError> {
        let first = match plain {
            Some(d) => d,
            None => self.read_once(crop, STRETCHES[0])?,
        };
        let passes = [
            first,
            self.read_once(crop, STRETCHES[1])?,
            self.read_once(crop, STRETCHES[2])?,
        ];
        let texts = passes.iter().map(|p| p.text.clone()).collect();
        let (d, f) = combine(passes);
        Ok((d, f, texts))
    }

    /// One pass of the network over `crop` with its width scaled by `stretch`.
    pub fn read_once(&self, crop: &Gray, stretch: f64) -> Result<Decoded, OcrError> {
        let (input, width, content) = preprocess::network_input(crop, stretch, &self.widths);
        if content == 0 {
            return Ok(Decoded::empty());
        }
        let tensor: Tensor = tract_ndarray::Array4::from_shape_vec((1, 1, INPUT_H, width), input)
            .map_err(|e| OcrError::Inference(e.to_string()))?
            .into();
        let plan = self
            .widths
            .iter()
            .position(|&w| w == width)
            .and_then(|i| self.plans.get(i))
            .ok_or_else(|| OcrError::Inference(format!("no plan for width {width}")))?;
        let out = plan
            .run(tvec!(tensor.into()))
            .map_err(|e| OcrError::Inference(format!("{e:#}")))?;
        let probs = out
            .first()
            .ok_or_else(|| OcrError::Inference("model produced no output".into()))?
            .to_array_view::<f32>()
            .map_err(|e| OcrError::Inference(format!("{e:#}")))?;
        let flat: Vec<f32> = probs.iter().copied().collect();
        let mut d = decode::greedy(&flat, CLASSES);
        // one output step per 4 input columns
        d.steps = d.steps.min(content.div_ceil(4));
        Ok(d)
    }

    /// Ranking of a single-pass reading among photo candidates: plausible readings first,
    /// then the calibration's score of that one pass. The score weighs the length of the
    /// reading and the room at the crop edges, so the whole number beats a confidently read
    /// fragment of it (a lone `1` of a `-6592`), which the raw path probability prefers.
    fn rank(&self, d: &Decoded) -> f32 {
        let z = self.calibration.score(&Features::single(d));
        if decode::plausible(&d.text) && !d.text.bytes().all(|c| c == b'-') {
            z
        } else if d.text.is_empty() {
            -2000.0 + z
        } else {
            -1000.0 + z
        }
    }

    fn crop_of(gray: &Gray, r: Roi) -> Gray {
        gray.crop(r.x as usize, r.y as usize, r.w as usize, r.h as usize)
    }

    /// Full photo: the whole image and the localised candidates are read once each and
    /// ranked by the calibration's score ([`Reader::rank`]); the best plausible reading's
    /// region is grown sideways to catch fragments of a longer number, then read with the
    /// two stretched passes (the plain one is the read already made).
    fn read_photo(&self, gray: &Gray) -> Result<(DisplayReading, ReadTrace), OcrError> {
        let full = Roi {
            x: 0,
            y: 0,
            w: gray.w as u32,
            h: gray.h as u32,
        };
        // The working image of the localiser also serves for reading the whole photo as one
        // region (it is resized to 32 px high anyway): no copy or resize of the full image.
        let (small, scale) = locate::working_image(gray);
        let region_gray = |r: Roi| -> std::borrow::Cow<'_, Gray> {
            if r == full {
                std::borrow::Cow::Borrowed(&small)
            } else {
                std::borrow::Cow::Owned(Self::crop_of(gray, r))
            }
        };
        let mut regions = vec![full];
        for c in locate::candidates_in(&small, scale, MAX_CANDIDATES) {
            // margin around the dense region: a little context as in training
            if let Some(r) = grow(gray, c.x, c.y, c.w, c.h, c.h * 0.15, c.h * 0.12) {
                regions.push(r);
            }
        }
        let mut best: Option<(Decoded, f32, Roi)> = None;
        for &r in &regions {
            let d = self.read_once(&region_gray(r), STRETCHES[0])?;
            let q = self.rank(&d);
            if best.as_ref().is_none_or(|(_, bq, _)| q > *bq) {
                best = Some((d, q, r));
            }
        }
        let Some((mut d, _, mut r)) = best else {
            return Ok((reading(Decoded::empty(), 0.0, full), ReadTrace::default()));
        };
        let mut trace = ReadTrace {
            candidates: regions.len(),
            ..ReadTrace::default()
        };
        // A candidate may hold only part of the digits (fragmented localisation). Read a
        // region grown sideways: a longer reading that contains this one replaces it (and is
        // grown again); any other disagreement caps the confidence.
        for _ in 0..2 {
            let rh = r.h as f32;
            let Some(ex) = grow(
                gray,
                r.x as f32,
                r.y as f32,
                r.w as f32,
                rh,
                rh * 1.5,
                rh * 0.15,
            ) else {
                break;
            };
            if ex == r {
                break;
            }
            let de = self.read_once(&region_gray(ex), STRETCHES[0])?;
            if de.text == d.text {
                trace.grown_disagrees = false;
                break;
            }
            trace.grown_disagrees = true;
            if de.text.len() > d.text.len()
                && de.text.contains(d.text.as_str())
                && decode::plausible(&de.text)
            {
                d = de;
                r = ex;
                trace.grown_replaced = true;
            } else {
                break;
            }
        }
        // `d` is the plain pass over exactly `r` (the candidate's or the grown region's read)
        let (d, f, texts) = self.read_region_after(&region_gray(r), Some(d))?;
        let mut c = self
            .calibration
            .confidence(&d.text, &f, self.calibration.photo_offset);
        trace.region_confidence = c;
        if trace.grown_disagrees {
            c = c.min(self.calibration.photo_disagree_cap);
        }
        // a single character from a photo is too often a fragment of the number
        if d.text.chars().count() <= 1 {
            c = c.min(0.8);
        }
        trace.features = f;
        trace.pass_texts = texts;
        Ok((reading(d, c, r), trace))
    }
}

/// The rectangle (x, y, w, h) grown by `mx` on the left and right and `my` above and below,
/// clamped to the image; `None` if it becomes smaller than [`MIN_SIDE`].
fn grow(gray: &Gray, x: f32, y: f32, w: f32, h: f32, mx: f32, my: f32) -> Option<Roi> {
    let x0 = (x - mx).max(0.0);
    let y0 = (y - my).max(0.0);
    let x1 = (x + w + mx).min(gray.w as f32);
    let y1 = (y + h + my).min(gray.h as f32);
    let r = Roi {
        x: x0 as u32,
        y: y0 as u32,
        w: (x1 - x0).max(0.0) as u32,
        h: (y1 - y0).max(0.0) as u32,
    };
    (r.w >= MIN_SIDE && r.h >= MIN_SIDE).then_some(r)
}

/// Agreement rule of [`Reader::read_gray`] over the passes of [`STRETCHES`].
fn combine(passes: [Decoded; 3]) -> (Decoded, Features) {
    let t = |i: usize| passes[i].text.as_str();
    let r = if t(0) == t(1) || t(0) == t(2) || t(1) != t(2) {
        0
    } else {
        1
    };
    let same: Vec<&Decoded> = passes.iter().filter(|p| p.text == passes[r].text).collect();
    let mut f = Features::single(&passes[r]);
    f.agree = (same.len() - 1) as f32;
    f.lp_min = same
        .iter()
        .map(|p| p.log_prob.max(-30.0))
        .fold(f32::INFINITY, f32::min);
    let [p0, p1, _] = passes;
    (if r == 0 { p0 } else { p1 }, f)
}

fn clamp_roi(r: Roi, w: u32, h: u32) -> Option<Roi> {
    if r.x >= w || r.y >= h {
        return None;
    }
    let rw = r.w.min(w - r.x);
    let rh = r.h.min(h - r.y);
    if rw < MIN_SIDE || rh < MIN_SIDE {
        return None;
    }
    Some(Roi {
        x: r.x,
        y: r.y,
        w: rw,
        h: rh,
    })
}

fn reading(d: Decoded, confidence: f32, region: Roi) -> DisplayReading {
    let (value, decimals) = parse_value(&d.text);
    DisplayReading {
        text: d.text,
        value,
        confidence,
        region,
        decimals,
    }
}

/// Parses a displayed digit string into an exact decimal: "0148.30" -> (148.30, 2).
pub fn parse_value(text: &str) -> (Option<Decimal>, Option<u32>) {
    if !decode::plausible(text) || text.bytes().all(|c| c == b'-') {
        return (None, None);
    }
    match Decimal::from_str(text) {
        Ok(v) => {
            let decimals = text.split_once('.').map_or(0, |(_, f)| f.len() as u32);
            (Some(v), Some(decimals))
        }
        Err(_) => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_keeping_scale() {
        let (v, d) = parse_value("0148.30");
        assert_eq!(v.map(|v| v.to_string()), Some("148.30".to_string()));
        assert_eq!(d, Some(2));
        assert_eq!(
            parse_value("-2.5").0.map(|v| v.to_string()),
            Some("-2.5".into())
        );
        assert_eq!(
            parse_value("0000").0.map(|v| v.to_string()),
            Some("0".into())
        );
        assert_eq!(parse_value("12").1, Some(0));
        assert_eq!(parse_value(""), (None, None));
        assert_eq!(parse_value("----"), (None, None));
        assert_eq!(parse_value("1.2.3"), (None, None));
    }

    #[test]
    fn roi_is_clamped_or_rejected() {
        assert_eq!(
            clamp_roi(
                Roi {
                    x: 10,
                    y: 10,
                    w: 500,
                    h: 500
                },
                100,
                50
            ),
            Some(Roi {
                x: 10,
                y: 10,
                w: 90,
                h: 40
            })
        );
        assert_eq!(
            clamp_roi(
                Roi {
                    x: 100,
                    y: 0,
                    w: 5,
                    h: 5
                },
                100,
                50
            ),
            None
        );
        assert_eq!(
            clamp_roi(
                Roi {
                    x: 0,
                    y: 0,
                    w: 4,
                    h: 40
                },
                100,
                50
            ),
            None
        );
    }

    fn dec(t: &str, lp: f32) -> Decoded {
        Decoded {
            text: t.into(),
            log_prob: lp,
            ..Decoded::empty()
        }
    }

    #[test]
    fn agreement_rule() {
        let (d, f) = combine([dec("1.5", -0.5), dec("1.5", -0.1), dec("1.5", -0.2)]);
        assert_eq!(
            (d.text.as_str(), f.agree, f.lp, f.lp_min),
            ("1.5", 2.0, -0.5, -0.5)
        );
        let (d, f) = combine([dec("1.5", -0.5), dec("1.6", -0.1), dec("1.5", -0.7)]);
        assert_eq!((d.text.as_str(), f.agree, f.lp_min), ("1.5", 1.0, -0.7));
        let (d, f) = combine([dec("7", -0.5), dec("1.6", -0.1), dec("1.6", -0.2)]);
        assert_eq!((d.text.as_str(), f.agree, f.lp), ("1.6", 1.0, -0.1));
        let (d, f) = combine([dec("7", -0.5), dec("1", -0.1), dec("2", -0.2)]);
        assert_eq!((d.text.as_str(), f.agree), ("7", 0.0));
        assert_eq!(f.len, 1.0);
    }

    #[test]
    fn reader_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Reader>();
    }
}
