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

use crate::decode::{Calibration, Decoded};
use crate::preprocess::{Gray, INPUT_H, INPUT_W};

/// Readings at or above this calibrated confidence may be accepted without review.
pub const ACCEPT_THRESHOLD: f32 = 0.85;

/// The embedded model (CNN + CTC, input 1x1x32x256, output 1x64x13 probabilities).
static MODEL_ONNX: &[u8] = include_bytes!("../model/sevenseg.onnx");
/// Calibration fitted on held-out synthetic data.
static CALIBRATION_JSON: &str = include_str!("../model/calibration.json");

/// Smallest side (pixels) of a region that is worth reading.
pub const MIN_SIDE: u32 = 8;
/// Candidate regions tried in full photos.
const MAX_CANDIDATES: usize = 7;
const CLASSES: usize = 13;

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

/// The reader: an optimised tract plan plus calibration. `Send + Sync`; build once and
/// share behind an `Arc`.
#[derive(Debug)]
pub struct Reader {
    plan: Plan,
    calibration: Calibration,
}

impl Reader {
    /// Loads the model embedded in the binary (`include_bytes!`); no file or network access.
    pub fn builtin() -> Result<Reader, OcrError> {
        let calibration: Calibration = serde_json::from_str(CALIBRATION_JSON)
            .map_err(|e| OcrError::Model(format!("calibration: {e}")))?;
        Self::from_onnx(MODEL_ONNX, calibration)
    }

    /// Loads another ONNX model of the same input/output layout (for experiments).
    pub fn from_onnx(onnx: &[u8], calibration: Calibration) -> Result<Reader, OcrError> {
        let plan = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(onnx))
            .and_then(|m| m.with_input_fact(0, f32::fact([1, 1, INPUT_H, INPUT_W]).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| OcrError::Model(format!("{e:#}")))?;
        Ok(Reader { plan, calibration })
    }

    /// Reads the display in `image`. With `roi`, only that region (fixed cameras); without,
    /// localise the display first (phone photos).
    pub fn read(
        &self,
        image: &image::DynamicImage,
        roi: Option<Roi>,
    ) -> Result<DisplayReading, OcrError> {
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
                let (d, conf) = self.read_gray(&crop)?;
                Ok(reading(d, conf, r))
            }
            None => {
                let gray = Gray::from_image(image);
                self.read_photo(&gray)
            }
        }
    }

    /// Recognises one crop with test-time variants: the crop as is and stretched to 88 % and
    /// 112 % of its width. All three must agree for the calibrated confidence (their median)
    /// to stand; a 2-of-3 majority keeps 0.7 × the lower of the two; otherwise the most
    /// confident single reading keeps 0.4 × its confidence.
    pub fn read_gray(&self, crop: &Gray) -> Result<(Decoded, f32), OcrError> {
        let base = self.read_once(crop, 1.0)?;
        let a = self.read_once(crop, 0.88)?;
        let b = self.read_once(crop, 1.12)?;
        Ok(combine(base, a, b))
    }

    /// One pass of the network over `crop` with its width scaled by `stretch`.
    pub fn read_once(&self, crop: &Gray, stretch: f64) -> Result<(Decoded, f32), OcrError> {
        let (input, _) = preprocess::model_input_stretched(crop, stretch);
        let tensor: Tensor = tract_ndarray::Array4::from_shape_vec((1, 1, INPUT_H, INPUT_W), input)
            .map_err(|e| OcrError::Inference(e.to_string()))?
            .into();
        let out = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| OcrError::Inference(format!("{e:#}")))?;
        let probs = out
            .first()
            .ok_or_else(|| OcrError::Inference("model produced no output".into()))?
            .to_array_view::<f32>()
            .map_err(|e| OcrError::Inference(format!("{e:#}")))?;
        let flat: Vec<f32> = probs.iter().copied().collect();
        let d = decode::greedy(&flat, CLASSES);
        let c = self.calibration.confidence(&d);
        Ok((d, c))
    }

    /// Full photo: whole image plus localised candidates; the most confident reading wins.
    fn read_photo(&self, gray: &Gray) -> Result<DisplayReading, OcrError> {
        let full = Roi {
            x: 0,
            y: 0,
            w: gray.w as u32,
            h: gray.h as u32,
        };
        let mut regions = vec![full];
        for c in locate::candidates(gray, MAX_CANDIDATES) {
            // margin around the dense region: a little context as in training
            let mx = c.h * 0.15;
            let my = c.h * 0.12;
            let x0 = (c.x - mx).max(0.0);
            let y0 = (c.y - my).max(0.0);
            let x1 = (c.x + c.w + mx).min(gray.w as f32);
            let y1 = (c.y + c.h + my).min(gray.h as f32);
            let r = Roi {
                x: x0 as u32,
                y: y0 as u32,
                w: (x1 - x0) as u32,
                h: (y1 - y0) as u32,
            };
            if r.w >= MIN_SIDE && r.h >= MIN_SIDE {
                regions.push(r);
            }
        }
        let mut best: Option<(Decoded, f32, Roi)> = None;
        for r in regions {
            let crop = gray.crop(r.x as usize, r.y as usize, r.w as usize, r.h as usize);
            let (d, c) = self.read_once(&crop, 1.0)?;
            let better = match &best {
                None => true,
                Some((bd, bc, _)) => (d.text.is_empty(), -c) < (bd.text.is_empty(), -*bc),
            };
            if better {
                best = Some((d, c, r));
            }
        }
        match best {
            Some((mut d, mut c, mut r)) => {
                // A candidate may hold only part of the digits (fragmented localisation).
                // Read a region grown sideways: a longer reading that contains this one
                // replaces it; any other disagreement caps the confidence.
                let mut cap = 1.0f32;
                let grow = r.h as f32 * 1.5;
                let x0 = (r.x as f32 - grow).max(0.0);
                let x1 = (r.x as f32 + r.w as f32 + grow).min(gray.w as f32);
                let y0 = (r.y as f32 - r.h as f32 * 0.15).max(0.0);
                let y1 = (r.y as f32 + r.h as f32 * 1.15).min(gray.h as f32);
                let ex = Roi {
                    x: x0 as u32,
                    y: y0 as u32,
                    w: (x1 - x0) as u32,
                    h: (y1 - y0) as u32,
                };
                if ex != r && ex.w >= MIN_SIDE && ex.h >= MIN_SIDE {
                    let crop =
                        gray.crop(ex.x as usize, ex.y as usize, ex.w as usize, ex.h as usize);
                    let (de, ce) = self.read_once(&crop, 1.0)?;
                    if de.text != d.text {
                        cap = 0.5;
                        if de.text.len() > d.text.len() && de.text.contains(d.text.as_str()) {
                            d = de;
                            c = ce;
                            r = ex;
                        }
                    }
                }
                // confirm the chosen region with the stretched variants
                let crop = gray.crop(r.x as usize, r.y as usize, r.w as usize, r.h as usize);
                let a = self.read_once(&crop, 0.88)?;
                let b = self.read_once(&crop, 1.12)?;
                let (d, c) = combine((d, c), a, b);
                // a single character from a photo is too often a fragment of the number
                if d.text.chars().count() <= 1 {
                    cap = cap.min(0.8);
                }
                Ok(reading(d, c.min(cap), r))
            }
            None => Ok(reading(
                Decoded {
                    text: String::new(),
                    log_prob: 0.0,
                    columns: vec![],
                },
                0.0,
                full,
            )),
        }
    }
}

/// Agreement rule of [`Reader::read_gray`].
fn combine(base: (Decoded, f32), a: (Decoded, f32), b: (Decoded, f32)) -> (Decoded, f32) {
    let (ta, tb) = (a.0.text == base.0.text, b.0.text == base.0.text);
    if ta && tb {
        let mut c = [base.1, a.1, b.1];
        c.sort_by(f32::total_cmp);
        return (base.0, c[1]);
    }
    if ta || tb {
        let other = if ta { a.1 } else { b.1 };
        return (base.0.clone(), 0.7 * base.1.min(other));
    }
    if a.0.text == b.0.text {
        let c = 0.7 * a.1.min(b.1);
        return (a.0, c);
    }
    let best = [base, a, b].into_iter().max_by(|x, y| x.1.total_cmp(&y.1));
    match best {
        Some((d, c)) => (d, 0.4 * c),
        None => (
            Decoded {
                text: String::new(),
                log_prob: 0.0,
                columns: vec![],
            },
            0.0,
        ),
    }
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

    fn dec(t: &str, c: f32) -> (Decoded, f32) {
        (
            Decoded {
                text: t.into(),
                log_prob: 0.0,
                columns: vec![],
            },
            c,
        )
    }

    #[test]
    fn agreement_rule() {
        let (d, c) = combine(dec("1.5", 0.9), dec("1.5", 0.99), dec("1.5", 0.95));
        assert_eq!((d.text.as_str(), c), ("1.5", 0.95));
        let (d, c) = combine(dec("1.5", 0.9), dec("1.6", 0.99), dec("1.5", 0.95));
        assert_eq!(d.text, "1.5");
        assert!((c - 0.63).abs() < 1e-6);
        let (d, c) = combine(dec("7", 0.9), dec("1.6", 0.99), dec("1.6", 0.95));
        assert_eq!(d.text, "1.6");
        assert!((c - 0.665).abs() < 1e-6);
        let (d, c) = combine(dec("7", 0.9), dec("1", 0.99), dec("2", 0.5));
        assert_eq!(d.text, "1");
        assert!((c - 0.396).abs() < 1e-6);
    }

    #[test]
    fn reader_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Reader>();
    }
}
