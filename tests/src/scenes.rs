//! Held-out photos of scale displays (`ocr/testdata/scenes`, rendered from a seed never used
//! in training) for tests that need the built-in reader to read a display: the tests pick one
//! it reads right and confidently, so they check METCON's handling of a reading, not the
//! model's accuracy (which `metcon-cloud ocr-eval` measures).

use std::path::{Path, PathBuf};

/// The folder, as a canonical path (WebDriver refuses `..` in file uploads).
pub fn dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ocr/testdata/scenes");
    std::fs::canonicalize(&d).unwrap_or(d)
}

/// A scene with a non-negative label that the built-in reader reads exactly and at the
/// acceptance confidence — inside its labelled display region with `fixed_camera`, else as
/// a phone photo (display found by the reader): (file, label, region x,y,w,h).
pub fn readable_scene(fixed_camera: bool) -> (PathBuf, String, [u32; 4]) {
    let reader = metcon_ocr::Reader::builtin().expect("the built-in model loads");
    let labels = std::fs::read_to_string(dir().join("labels.csv")).expect("labels.csv");
    let regions = std::fs::read_to_string(dir().join("regions.csv")).expect("regions.csv");
    for line in labels.lines().skip(1) {
        let Some((file, text)) = line.split_once(',') else {
            continue;
        };
        if text.is_empty() || text.starts_with('-') || text == "1000.2" {
            continue;
        }
        let Some(r) = regions
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{file},")))
        else {
            continue;
        };
        let r: Vec<u32> = r.split(',').filter_map(|v| v.parse().ok()).collect();
        let [x, y, w, h] = r[..] else { continue };
        let Ok(img) = image::open(dir().join(file)) else {
            continue;
        };
        let roi = fixed_camera.then_some(metcon_ocr::Roi { x, y, w, h });
        let good = reader
            .read(&img, roi)
            .is_ok_and(|r| r.text == text && r.confidence >= metcon_ocr::ACCEPT_THRESHOLD);
        if good {
            return (dir().join(file), text.to_string(), [x, y, w, h]);
        }
    }
    panic!("the built-in reader reads none of the held-out scenes confidently");
}
