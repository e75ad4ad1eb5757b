//! Analytics benchmark: generate ~1,000,000 mass-check events with `metcon-cloud generate`,
//! then time the mass-variance report with no filter and with each filter (uncached: every
//! request asks for a page of that filter not asked for before: pages 1–6), the CSV export of every mass check (rows/s and
//! the server's resident memory sampled during the export), and the mass balance over
//! 10,000 batches and over everything.
//!
//! `cargo build --release -p metcon-cloud -p metcon-e2e && target/release/analytics_bench --batches 250000 --days 365 --data /tmp/metcon-bench`
//! (`--data` keeps the generated history; a second run reuses it. `--mongodb`: the store is
//! MongoDB instead: `METCON_TEST_MONGODB_URI`, or a private `secantusd-rs` stand-in, see
//! `metcon_e2e::mongo`; always generated afresh.)

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use metcon_e2e::{sibling_binary, Server};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 250_000)]
    batches: u64,
    #[arg(long, default_value_t = 365)]
    days: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Data folder to generate into (or reuse); a temporary one if not given.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Timed requests per filter.
    #[arg(long, default_value_t = 5)]
    repeat: u32,
    /// Store in MongoDB (METCON_TEST_MONGODB_URI, or a private secantusd-rs) instead of SQLite.
    #[arg(long)]
    mongodb: bool,
}

const PASSWORD: &str = "benchmark-password-123";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn timed(c: &reqwest::Client, url: &str, token: &str) -> Result<(Duration, Value)> {
    let t = Instant::now();
    let res = c.get(url).bearer_auth(token).send().await?;
    let status = res.status();
    let v: Value = res.json().await?;
    let d = t.elapsed();
    if !status.is_success() {
        bail!("{url}: {status} {v}");
    }
    Ok((d, v))
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_s(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The fields after the command name (which is in parentheses): utime is the
            // 12th, stime the 13th; both in clock ticks (100 per second on Linux).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let dir = args
        .data
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let bin = sibling_binary("metcon-cloud")?;
    let mongo = if args.mongodb {
        Some(
            metcon_e2e::mongo::MongoTarget::from_env("analytics")?
                .context("--mongodb needs METCON_TEST_MONGODB_URI or secantusd-rs")?,
        )
    } else {
        None
    };
    let env = mongo.as_ref().map(|m| m.env()).unwrap_or_default();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    println!(
        "store: {}",
        if mongo.is_some() { "MongoDB" } else { "SQLite" }
    );
    let fresh = mongo.is_some() || !dir.join("metcon.db").exists();
    if fresh {
        let t = Instant::now();
        let st = Command::new(&bin)
            .args([
                "generate",
                "--batches",
                &args.batches.to_string(),
                "--days",
                &args.days.to_string(),
                "--seed",
                &args.seed.to_string(),
            ])
            .env("METCON_DATA_DIR", &dir)
            .env("METCON_LOG", "warn")
            .envs(env.iter().copied())
            .status()
            .context("while running metcon-cloud generate")?;
        if !st.success() {
            bail!("generate failed");
        }
        println!("generate: {:.1} s", t.elapsed().as_secs_f64());
        let st = Command::new(&bin)
            .args([
                "user",
                "create",
                "--username",
                "bench-analyst",
                "--role",
                "analyst",
            ])
            .env("METCON_DATA_DIR", &dir)
            .env("METCON_LOG", "warn")
            .env("METCON_NEW_PASSWORD", PASSWORD)
            .envs(env.iter().copied())
            .status()?;
        if !st.success() {
            bail!("user create failed");
        }
    }
    if mongo.is_none() {
        let db = std::fs::metadata(dir.join("metcon.db"))?.len();
        println!("database: {:.2} GiB", db as f64 / (1u64 << 30) as f64);
    }
    let server = Server::start(&bin, &dir, &env)?;
    let base = server.base.clone();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let login: Value = c
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "username": "bench-analyst", "password": PASSWORD }))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .context("login failed")?
        .to_string();

    // Pick realistic filter values from the unfiltered report.
    let (_, all) = timed(
        &c,
        &format!("{base}/api/reports/mass-checks?page=999999"),
        &token,
    )
    .await?;
    let total = all["total"].as_u64().unwrap_or(0);
    println!("mass-check events: {total}");
    let operator = all["breakdowns"]["by_operator"][0]["operator"]
        .as_str()
        .unwrap_or("x")
        .to_string();
    let (_, first) = timed(&c, &format!("{base}/api/reports/mass-checks"), &token).await?;
    let newest = first["rows"][0]["at"]
        .as_str()
        .unwrap_or("2026-01-01")
        .get(..10)
        .unwrap_or("2026-01-01")
        .to_string();
    let day: time::Date = time::Date::parse(
        &newest,
        time::macros::format_description!("[year]-[month]-[day]"),
    )?;
    let month_ago = day - time::Duration::days(30);
    let filters = [
        ("no filter".to_string(), String::new()),
        ("date range (30 days)".into(), format!("from={month_ago}&to={day}")),
        ("pipeline".into(), "pipeline=silver".into()),
        ("station".into(), "station=casting".into()),
        ("operator".into(), format!("operator={operator}")),
        ("tolerance status".into(), "status=out".into()),
        ("flow version".into(), "flow_id=gen_gold_refining&flow_version=2".into()),
        ("all of them".into(), format!("from={month_ago}&to={day}&pipeline=gold&station=casting&status=out&flow_id=gen_gold_refining&flow_version=2")),
    ];
    println!("\n| filter | matching checks | p50 | max |\n|---|---:|---:|---:|");
    for (name, q) in &filters {
        let mut times = Vec::new();
        let mut n = 0;
        for page in 0..args.repeat {
            let (d, v) = timed(
                &c,
                &format!("{base}/api/reports/mass-checks?{q}&page={}", 2 + page),
                &token,
            )
            .await?;
            n = v["total"].as_u64().unwrap_or(0);
            times.push(d);
        }
        // page 1 too (the page a user sees first), not cached yet
        let (d, _) = timed(&c, &format!("{base}/api/reports/mass-checks?{q}"), &token).await?;
        times.push(d);
        times.sort();
        println!(
            "| {name} | {n} | {:.0} ms | {:.0} ms |",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }

    // CSV export with the server's RSS sampled.
    let pid = server.pid();
    let rss_before = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(rss_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let r = rss_kib(pid);
                peak.fetch_max(r, Ordering::Relaxed);
                samples.push(r);
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        })
    };
    let cpu_before = cpu_s(pid);
    let t = Instant::now();
    let mut res = c
        .get(format!("{base}/api/reports/mass-checks/csv"))
        .bearer_auth(&token)
        .send()
        .await?;
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = res.chunk().await? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let d = t.elapsed();
    let server_cpu = cpu_s(pid) - cpu_before;
    done.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    let rows = lines.saturating_sub(1);
    let at = |n: usize| samples.get(samples.len() * n / 4).copied().unwrap_or(0) / 1024;
    let last = samples.last().copied().unwrap_or(0);
    println!(
        "\nCSV export: {rows} rows, {:.0} MiB in {:.2} s = {:.0} rows/s; server RSS before {} MiB, at 25/50/75 % {}/{}/{} MiB, at the end {} MiB, peak {} MiB",
        bytes as f64 / 1048576.0,
        d.as_secs_f64(),
        rows as f64 / d.as_secs_f64(),
        rss_before / 1024,
        at(1),
        at(2),
        at(3),
        last / 1024,
        peak.load(Ordering::Relaxed) / 1024
    );
    println!(
        "CSV export: server CPU {server_cpu:.2} s ({:.2} µs per row)",
        server_cpu * 1e6 / rows.max(1) as f64
    );

    // Mass balance: a date range of batches holding about 10,000 batches, then everything.
    let (_, mb) = timed(
        &c,
        &format!("{base}/api/reports/mass-balance?page=999999"),
        &token,
    )
    .await?;
    let batches = mb["summary"]["batches"].as_u64().unwrap_or(1).max(1);
    let days = ((10_000.0 / batches as f64) * args.days as f64).ceil() as i64;
    let from = day - time::Duration::days(days + 2);
    let to = day - time::Duration::days(3);
    for (label, q) in [
        ("~10,000 batches", format!("from={from}&to={to}")),
        ("all batches", String::new()),
    ] {
        let mut times = Vec::new();
        let mut n = 0;
        for page in 0..args.repeat {
            let (d, v) = timed(
                &c,
                &format!("{base}/api/reports/mass-balance?{q}&page={}", 2000 + page),
                &token,
            )
            .await?;
            n = v["summary"]["batches"].as_u64().unwrap_or(0);
            times.push(d);
        }
        times.sort();
        println!(
            "mass balance, {label}: {n} batches, p50 {:.0} ms, max {:.0} ms",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }
    Ok(())
}
