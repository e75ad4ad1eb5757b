//! Command-line front end of the METCON display reader:
//! `metcon-ocr read IMAGE [--roi x,y,w,h] [--json]`,
//! `metcon-ocr eval DIR [--threshold T] [--no-external]` and
//! `metcon-ocr bench IMAGE [--roi x,y,w,h] [--runs N]` (timing on the current thread).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use metcon_ocr::{eval, Reader, Roi, ACCEPT_THRESHOLD};

const USAGE: &str = "usage:
  metcon-ocr read IMAGE [--roi x,y,w,h] [--json]
  metcon-ocr eval DIR [--threshold T] [--no-external]
  metcon-ocr bench IMAGE [--roi x,y,w,h] [--runs N]";

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
            let reader = Reader::builtin().map_err(|e| e.to_string())?;
            let first = reader.read(&img, roi).map_err(|e| e.to_string())?;
            let t = Instant::now();
            for _ in 0..runs {
                reader.read(&img, roi).map_err(|e| e.to_string())?;
            }
            let ms = t.elapsed().as_secs_f64() * 1000.0 / runs.max(1) as f64;
            println!(
                "{}x{} -> {:?} ({:.3}): {ms:.2} ms per read over {runs} runs",
                img.width(),
                img.height(),
                first.text,
                first.confidence
            );
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    }
}
