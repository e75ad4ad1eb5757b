//! Evaluation over a labelled folder (`labels.csv` with header `filename,text` beside the
//! images; an optional third column `roi` holds `full` or `x y w h` to read a fixed region
//! instead of localising the display): exact-match accuracy, accuracy and coverage at the acceptance threshold and
//! milliseconds per image for the built-in reader, side by side with `ssocr` and
//! `tesseract` run as external processes when they are installed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{OcrError, Reader, Roi};

/// Errors of an evaluation run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read labels {path}: {source}")]
    Labels { path: PathBuf, source: csv::Error },
    #[error("labels.csv has no rows")]
    NoRows,
    #[error(transparent)]
    Reader(#[from] OcrError),
    #[error("cannot write: {0}")]
    Io(String),
}

/// Results of one engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineResult {
    pub engine: String,
    /// `false` when the external program is not installed (other fields are then zero).
    pub installed: bool,
    pub images: usize,
    pub exact: usize,
    /// Readings at or above the threshold (built-in reader only).
    pub accepted: Option<usize>,
    /// Correct readings among the accepted ones.
    pub accepted_correct: Option<usize>,
    /// Images that could not be decoded or read (counted as wrong).
    pub failed: usize,
    pub total_ms: f64,
}

impl EngineResult {
    fn new(engine: &str, installed: bool) -> Self {
        EngineResult {
            engine: engine.to_string(),
            installed,
            images: 0,
            exact: 0,
            accepted: None,
            accepted_correct: None,
            failed: 0,
            total_ms: 0.0,
        }
    }
    pub fn accuracy(&self) -> f64 {
        ratio(self.exact, self.images)
    }
    /// Share of images read at or above the threshold.
    pub fn coverage(&self) -> Option<f64> {
        self.accepted.map(|a| ratio(a, self.images))
    }
    /// Accuracy among the accepted readings.
    pub fn accepted_accuracy(&self) -> Option<f64> {
        match (self.accepted, self.accepted_correct) {
            (Some(a), Some(c)) => Some(ratio(c, a)),
            _ => None,
        }
    }
    /// Wrong readings among the accepted ones.
    pub fn wrong_accepted(&self) -> Option<usize> {
        match (self.accepted, self.accepted_correct) {
            (Some(a), Some(c)) => Some(a - c),
            _ => None,
        }
    }
    pub fn ms_per_image(&self) -> f64 {
        if self.images == 0 {
            0.0
        } else {
            self.total_ms / self.images as f64
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// One misread of the built-in reader.
#[derive(Debug, Clone, PartialEq)]
pub struct Misread {
    pub file: String,
    pub expected: String,
    pub got: String,
    pub confidence: f32,
}

/// The report of [`evaluate`]; `Display` prints a side-by-side table.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    pub dir: PathBuf,
    pub threshold: f32,
    pub engines: Vec<EngineResult>,
    /// Misreads of the built-in reader, most confident first.
    pub misreads: Vec<Misread>,
}

impl EvalReport {
    /// The built-in reader's result.
    pub fn metcon(&self) -> Option<&EngineResult> {
        self.engines.iter().find(|e| e.engine == "metcon")
    }
}

/// Evaluates the built-in reader (and, with `compare_external`, ssocr and tesseract) on the
/// images listed in `dir/labels.csv`. Rows without a `roi` column are read with display
/// localisation (phone photos); `full` reads the whole image as the region (crops).
pub fn evaluate(
    dir: &Path,
    threshold: f32,
    compare_external: bool,
) -> Result<EvalReport, EvalError> {
    let reader = Reader::builtin()?;
    evaluate_with(&reader, dir, threshold, compare_external)
}

/// As [`evaluate`], with a reader built by the caller.
pub fn evaluate_with(
    reader: &Reader,
    dir: &Path,
    threshold: f32,
    compare_external: bool,
) -> Result<EvalReport, EvalError> {
    let rows = read_labels(dir)?;
    let mut metcon = EngineResult::new("metcon", true);
    metcon.accepted = Some(0);
    metcon.accepted_correct = Some(0);
    let mut misreads = Vec::new();
    for row in &rows {
        let (file, expected) = (&row.file, &row.text);
        let path = dir.join(file);
        let t = Instant::now();
        let got = image::open(&path).ok().and_then(|img| {
            let roi = match row.roi {
                RowRoi::Localise => None,
                RowRoi::Full => Some(Roi {
                    x: 0,
                    y: 0,
                    w: img.width(),
                    h: img.height(),
                }),
                RowRoi::Fixed(r) => Some(r),
            };
            reader.read(&img, roi).ok()
        });
        metcon.total_ms += t.elapsed().as_secs_f64() * 1000.0;
        metcon.images += 1;
        match got {
            Some(r) => {
                let ok = r.text == *expected;
                metcon.exact += usize::from(ok);
                if r.confidence >= threshold {
                    metcon.accepted = metcon.accepted.map(|a| a + 1);
                    metcon.accepted_correct = metcon.accepted_correct.map(|a| a + usize::from(ok));
                }
                if !ok {
                    misreads.push(Misread {
                        file: file.clone(),
                        expected: expected.clone(),
                        got: r.text,
                        confidence: r.confidence,
                    });
                }
            }
            None => metcon.failed += 1,
        }
    }
    misreads.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut engines = vec![metcon];
    if compare_external {
        engines.push(run_external("ssocr", dir, &rows, ssocr));
        engines.push(run_external("tesseract", dir, &rows, tesseract));
    }
    Ok(EvalReport {
        dir: dir.to_path_buf(),
        threshold,
        engines,
        misreads,
    })
}

/// Header of [`write_features`]' CSV.
pub const FEATURES_HEADER: &str = "file,expected,correct,text,confidence,region_confidence,\
lp,ln_min_step,ln_min_char,point_alt,agree,len,lp_min,edge_left,edge_right,ln_point_alt,candidates,\
grown_disagrees,grown_replaced,pass0,pass1,pass2,x,y,w,h,ms";

/// Writes one CSV row per labelled image of `dir` with the reading, the calibrator's
/// features and the localisation trace (`metcon-ocr features`; input of
/// `training/calibrate.py`). Images that cannot be opened or read are skipped.
pub fn write_features(
    reader: &Reader,
    dir: &Path,
    out: &mut dyn std::io::Write,
) -> Result<usize, EvalError> {
    let rows = read_labels(dir)?;
    let io = |e: std::io::Error| EvalError::Io(e.to_string());
    writeln!(out, "{FEATURES_HEADER}").map_err(io)?;
    let mut n = 0;
    for row in &rows {
        let Ok(img) = image::open(dir.join(&row.file)) else {
            continue;
        };
        let roi = match row.roi {
            RowRoi::Localise => None,
            RowRoi::Full => Some(Roi {
                x: 0,
                y: 0,
                w: img.width(),
                h: img.height(),
            }),
            RowRoi::Fixed(r) => Some(r),
        };
        let t = Instant::now();
        let Ok((r, tr)) = reader.read_traced(&img, roi) else {
            continue;
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let f = tr.features;
        let pass = |i: usize| tr.pass_texts.get(i).cloned().unwrap_or_default();
        writeln!(
            out,
            "{},{},{},{},{:.6},{:.6},{:.5},{:.5},{:.5},{:.5},{},{},{:.5},{:.4},{:.4},{:.5},{},{},{},{},{},{},{},{},{},{},{:.2}",
            row.file,
            quote(&row.text),
            u8::from(r.text == row.text),
            quote(&r.text),
            r.confidence,
            tr.region_confidence,
            f.lp,
            f.ln_min_step,
            f.ln_min_char,
            f.point_alt,
            f.agree,
            f.len,
            f.lp_min,
            f.edge_left,
            f.edge_right,
            f.ln_point_alt(),
            tr.candidates,
            u8::from(tr.grown_disagrees),
            u8::from(tr.grown_replaced),
            quote(&pass(0)),
            quote(&pass(1)),
            quote(&pass(2)),
            r.region.x,
            r.region.y,
            r.region.w,
            r.region.h,
            ms
        )
        .map_err(io)?;
        n += 1;
    }
    Ok(n)
}

/// Readings are written with a leading `'` so that spreadsheet tools keep "0148.30" as text.
fn quote(s: &str) -> String {
    format!("'{s}")
}

/// How a row's image is read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RowRoi {
    Localise,
    Full,
    Fixed(Roi),
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    file: String,
    text: String,
    roi: RowRoi,
}

fn parse_row_roi(s: &str) -> RowRoi {
    let s = s.trim();
    if s.eq_ignore_ascii_case("full") {
        return RowRoi::Full;
    }
    let v: Vec<u32> = s
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    match v.as_slice() {
        [x, y, w, h] => RowRoi::Fixed(Roi {
            x: *x,
            y: *y,
            w: *w,
            h: *h,
        }),
        _ => RowRoi::Localise,
    }
}

fn read_labels(dir: &Path) -> Result<Vec<Row>, EvalError> {
    let path = dir.join("labels.csv");
    let mut rd = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(&path)
        .map_err(|source| EvalError::Labels {
            path: path.clone(),
            source,
        })?;
    let mut rows = Vec::new();
    for rec in rd.records() {
        let rec = rec.map_err(|source| EvalError::Labels {
            path: path.clone(),
            source,
        })?;
        let file = rec.get(0).unwrap_or("").trim().to_string();
        let text = rec.get(1).unwrap_or("").trim().to_string();
        let roi = rec.get(2).map_or(RowRoi::Localise, parse_row_roi);
        if !file.is_empty() {
            rows.push(Row { file, text, roi });
        }
    }
    if rows.is_empty() {
        return Err(EvalError::NoRows);
    }
    Ok(rows)
}

fn installed(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

type External = fn(&Path) -> Option<String>;

fn run_external(name: &str, dir: &Path, rows: &[Row], f: External) -> EngineResult {
    if !installed(name) {
        return EngineResult::new(name, false);
    }
    let mut r = EngineResult::new(name, true);
    for row in rows {
        let (file, expected) = (&row.file, &row.text);
        let t = Instant::now();
        let got = f(&dir.join(file));
        r.total_ms += t.elapsed().as_secs_f64() * 1000.0;
        r.images += 1;
        match got {
            Some(text) => r.exact += usize::from(text == *expected),
            None => r.failed += 1,
        }
    }
    r
}

/// Keeps the characters a display reading can have.
fn clean(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect()
}

/// ssocr with iterative thresholding, automatic digit count and the decimal charset; dark
/// digits first, then light digits on a dark background if that fails.
fn ssocr(path: &Path) -> Option<String> {
    let attempt = |extra: &[&str]| -> Option<String> {
        let mut cmd = Command::new("ssocr");
        cmd.args(["-T", "-d", "-1", "-c", "decimal"])
            .args(extra)
            .args(["closing", "1"])
            .arg(path);
        let out = cmd.output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !text.is_empty() && !text.contains('_') {
            Some(clean(text.as_bytes()))
        } else {
            None
        }
    };
    attempt(&[]).or_else(|| attempt(&["-f", "white", "-b", "black"]))
}

/// tesseract as a single text line with a digit whitelist.
fn tesseract(path: &Path) -> Option<String> {
    let out = Command::new("tesseract")
        .arg(path)
        .arg("stdout")
        .args(["--psm", "7", "-c", "tessedit_char_whitelist=0123456789.-"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(clean(&out.stdout))
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.engines.first().map_or(0, |e| e.images);
        writeln!(
            f,
            "evaluation of {} ({} images), acceptance threshold {:.2}",
            self.dir.display(),
            n,
            self.threshold
        )?;
        writeln!(
            f,
            "{:<10} {:>7} {:>9} {:>10} {:>10} {:>14} {:>9}",
            "engine", "images", "exact", "coverage", "acc@thr", "wrong@thr", "ms/image"
        )?;
        for e in &self.engines {
            if !e.installed {
                writeln!(f, "{:<10} {:>7}", e.engine, "not installed")?;
                continue;
            }
            let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
            let wrong = match (e.wrong_accepted(), e.accepted) {
                (Some(w), Some(a)) => format!("{w}/{a} ({:.2}%)", ratio(w, a) * 100.0),
                _ => "-".to_string(),
            };
            writeln!(
                f,
                "{:<10} {:>7} {:>9} {:>10} {:>10} {:>14} {:>9.1}",
                e.engine,
                e.images,
                format!("{:.1}%", e.accuracy() * 100.0),
                pct(e.coverage()),
                pct(e.accepted_accuracy()),
                wrong,
                e.ms_per_image()
            )?;
        }
        if !self.misreads.is_empty() {
            writeln!(
                f,
                "most confident metcon misreads (expected -> got, confidence):"
            )?;
            for m in self.misreads.iter().take(10) {
                writeln!(
                    f,
                    "  {}: {:?} -> {:?} ({:.3})",
                    m.file, m.expected, m.got, m.confidence
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_external_output() {
        assert_eq!(clean(b" 12.5\n\x0c"), "12.5");
        assert_eq!(clean(b"-0 0 1"), "-001");
    }

    #[test]
    fn ratios_and_table() {
        let mut e = EngineResult::new("metcon", true);
        e.images = 4;
        e.exact = 3;
        e.accepted = Some(2);
        e.accepted_correct = Some(2);
        e.total_ms = 8.0;
        assert!((e.accuracy() - 0.75).abs() < 1e-9);
        assert_eq!(e.coverage(), Some(0.5));
        assert_eq!(e.wrong_accepted(), Some(0));
        assert!((e.ms_per_image() - 2.0).abs() < 1e-9);
        let r = EvalReport {
            dir: PathBuf::from("x"),
            threshold: 0.85,
            engines: vec![e, EngineResult::new("ssocr", false)],
            misreads: vec![],
        };
        let s = r.to_string();
        assert!(
            s.contains("metcon") && s.contains("not installed") && s.contains("75.0%"),
            "{s}"
        );
    }

    #[test]
    fn row_rois() {
        assert_eq!(parse_row_roi("full"), RowRoi::Full);
        assert_eq!(parse_row_roi(""), RowRoi::Localise);
        assert_eq!(
            parse_row_roi("1 2 30 40"),
            RowRoi::Fixed(Roi {
                x: 1,
                y: 2,
                w: 30,
                h: 40
            })
        );
    }

    #[test]
    fn missing_labels_is_an_error() {
        let dir = std::env::temp_dir().join("metcon-ocr-no-labels");
        let _ = std::fs::create_dir_all(&dir);
        assert!(read_labels(&dir).is_err());
    }
}
