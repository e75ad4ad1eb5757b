//! Command-line front end of the METCON display reader:
//! `metcon-ocr read IMAGE [--roi x,y,w,h] [--json]`,
//! `metcon-ocr eval DIR [--threshold T] [--no-external]` and
//! `metcon-ocr bench IMAGE [--roi x,y,w,h] [--runs N]` (timing on the current thread) and
//! `metcon-ocr features DIR [--model M.onnx] [--calibration C.json]` (calibration input).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use metcon_ocr::{eval, Reader, Roi, ACCEPT_THRESHOLD};

const USAGE: &str = "usage:
  metcon-ocr read IMAGE [--roi x,y,w,h] [--json]
  metcon-ocr eval DIR [--threshold T] [--no-external]
  metcon-ocr bench IMAGE [--roi x,y,w,h] [--runs N]
  metcon-ocr features DIR [--model M.onnx] [--calibration C.json]   # CSV for training/calibrate.py";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("metcon-ocr: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_roi(s: &str) -> Result<Roi, String> {
    let v: Vec<u32> = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .map_err(|_| format!("bad --roi {s:?}, expected x,y,w,h"))
        })
        .collect::<Result<_, _>>()?;
    match v.as_slice() {
        [x, y, w, h] => Ok(Roi {
            x: *x,
            y: *y,
            w: *w,
            h: *h,
        }),
        _ => Err(format!("bad --roi {s:?}, expected x,y,w,h")),
    }
}

/// Value of `--name V` in `args`.
fn opt<'a>(args: &'a [String], name: &str) -> Result<Option<&'a str>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .map(|s| Some(s.as_str()))
            .ok_or_else(|| format!("{name} needs a value")),
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let cmd = args.first().map(String::as_str).ok_or(USAGE)?;
    let target = args.get(1).ok_or(USAGE)?;
    let rest = &args[2..];
    match cmd {
        "read" => {
            let roi = opt(rest, "--roi")?.map(parse_roi).transpose()?;
            let img = image::open(target).map_err(|e| format!("{target}: {e}"))?;
            let reader = Reader::builtin().map_err(|e| e.to_string())?;
            let r = reader.read(&img, roi).map_err(|e| e.to_string())?;
            if rest.iter().any(|a| a == "--json") {
                println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
            } else {
                let status = if r.confidence >= ACCEPT_THRESHOLD {
                    "accepted"
                } else {
                    "review"
                };
                println!(
                    "{}\tconfidence {:.3} ({status})\tregion {},{},{},{}",
                    r.text, r.confidence, r.region.x, r.region.y, r.region.w, r.region.h
                );
            }
            Ok(())
        }
        "eval" => {
            let threshold = match opt(rest, "--threshold")? {
                Some(t) => t
                    .parse::<f32>()
                    .map_err(|_| format!("bad --threshold {t:?}"))?,
                None => ACCEPT_THRESHOLD,
            };
            let external = !rest.iter().any(|a| a == "--no-external");
            let report = eval::evaluate(Path::new(target), threshold, external)
                .map_err(|e| e.to_string())?;
            print!("{report}");
            Ok(())
        }
        "bench" => {
            let roi = opt(rest, "--roi")?.map(parse_roi).transpose()?;
            let runs = match opt(rest, "--runs")? {
                Some(n) => n
                    .parse::<usize>()
                    .map_err(|_| format!("bad --runs {n:?}"))?,
                None => 50,
            };
            let img = image::open(target).map_err(|e| format!("{target}: {e}"))?;
            let t = Instant::now();
            let reader = Reader::builtin().map_err(|e| e.to_string())?;
            println!(
                "Reader::builtin: {:.1} ms",
                t.elapsed().as_secs_f64() * 1000.0
            );
            let first = reader.read(&img, roi).map_err(|e| e.to_string())?;
            let mut ms = Vec::with_capacity(runs);
            let cpu0 = thread_cpu_ns();
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                reader.read(&img, roi).map_err(|e| e.to_string())?;
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let cpu = match (cpu0, thread_cpu_ns()) {
                (Some(a), Some(b)) => format!(
                    ", {:.2} ms CPU of this thread per read",
                    (b.saturating_sub(a)) as f64 / 1e6 / ms.len() as f64
                ),
                _ => String::new(),
            };
            let mean = ms.iter().sum::<f64>() / ms.len() as f64;
            ms.sort_by(f64::total_cmp);
            let median = ms[ms.len() / 2];
            println!(
                "{}x{} -> {:?} ({:.3}): {mean:.2} ms mean, {median:.2} ms median, {:.2} ms min wall per read over {} runs{cpu}",
                img.width(),
                img.height(),
                first.text,
                first.confidence,
                ms[0],
                ms.len()
            );
            Ok(())
        }
        "features" => {
            let reader = match opt(rest, "--model")? {
                None => Reader::builtin().map_err(|e| e.to_string())?,
                Some(m) => {
                    let onnx = std::fs::read(m).map_err(|e| format!("{m}: {e}"))?;
                    let cal = match opt(rest, "--calibration")? {
                        None => metcon_ocr::decode::Calibration::neutral(),
                        Some(c) => {
                            let text =
                                std::fs::read_to_string(c).map_err(|e| format!("{c}: {e}"))?;
                            serde_json::from_str(&text).map_err(|e| format!("{c}: {e}"))?
                        }
                    };
                    Reader::from_onnx(&onnx, cal).map_err(|e| e.to_string())?
                }
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let n = eval::write_features(&reader, Path::new(target), &mut out)
                .map_err(|e| e.to_string())?;
            eprintln!("{n} images");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    }
}

/// Time this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`, nanoseconds):
/// on a shared machine the wall-clock time of a read includes waiting for a core, this does not.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
