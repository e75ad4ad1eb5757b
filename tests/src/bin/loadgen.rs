//! Load benchmark: mass-check round trips (HTTP → domain → SQLite commit) with N concurrent
//! clients against a real `metcon-cloud`, and batch event appends per second.
//!
//! `cargo build --release -p metcon-cloud -p metcon-e2e && target/release/loadgen --clients 200 --seconds 20`
//! (`--mongodb`: the store is MongoDB instead of SQLite: `METCON_TEST_MONGODB_URI`, or a
//! private `secantusd-rs` stand-in, see `metcon_e2e::mongo`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use metcon_e2e::{sibling_binary, Server};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Measured duration.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Mass-check steps per batch.
    #[arg(long, default_value_t = 40)]
    steps: usize,
    /// Store in MongoDB (METCON_TEST_MONGODB_URI, or a private secantusd-rs) instead of SQLite.
    #[arg(long)]
    mongodb: bool,
}

const PASSWORD: &str = "benchmark-password-123";

async fn post(c: &reqwest::Client, url: String, token: &str, body: Value) -> Result<(u16, Value)> {
    let res = c.post(url).bearer_auth(token).json(&body).send().await?;
    let s = res.status().as_u16();
    let v = res.json::<Value>().await.unwrap_or(Value::Null);
    Ok((s, v))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mongo = if args.mongodb {
        let t = metcon_e2e::mongo::MongoTarget::from_env("loadgen")?
            .context("--mongodb needs METCON_TEST_MONGODB_URI or secantusd-rs")?;
        println!(
            "store: MongoDB {}",
            if t.is_private() {
                "(private secantusd-rs stand-in)"
            } else {
                "(METCON_TEST_MONGODB_URI)"
            }
        );
        Some(t)
    } else {
        println!("store: SQLite");
        None
    };
    let env = mongo.as_ref().map(|m| m.env()).unwrap_or_default();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start(&sibling_binary("metcon-cloud")?, dir.path(), &env)?;
    let base = server.base.clone();
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let token = server
        .setup_token
        .clone()
        .context("no setup token printed")?;
    let res = c
        .post(format!("{base}/api/setup"))
        .json(&json!({ "token": token, "username": "admin", "password": PASSWORD }))
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("setup failed: {}", res.text().await?);
    }
    let login = |u: &'static str| {
        let c = c.clone();
        let base = base.clone();
        async move {
            let v: Value = c
                .post(format!("{base}/api/auth/login"))
                .json(&json!({ "username": u, "password": PASSWORD }))
                .send()
                .await?
                .json()
                .await?;
            v["access_token"]
                .as_str()
                .map(str::to_string)
                .context("login failed")
        }
    };
    let admin = login("admin").await?;
    post(&c, format!("{base}/api/users"), &admin, json!({ "username": "bench", "password": PASSWORD, "role": "operator", "stations": ["scale"] })).await?;
    let steps: Vec<Value> = (0..args.steps)
        .map(|i| json!({ "step_id": format!("w{i}"), "name": format!("Weigh {i}"), "type": "mass_check", "expected_mass": "1000", "unit": "g", "tolerance": { "kind": "absolute", "value": "0.5", "unit": "g" } }))
        .collect();
    let content = json!({ "name": "Bench", "pipeline": "gold", "stations": [{ "station_id": "scale", "name": "Scale", "steps": steps }] });
    let (s, v) = post(
        &c,
        format!("{base}/api/flows"),
        &admin,
        json!({ "flow_id": "bench", "content": content }),
    )
    .await?;
    if s != 201 {
        bail!("flow: {v}");
    }
    post(
        &c,
        format!("{base}/api/flows/bench/versions/1/publish"),
        &admin,
        json!({}),
    )
    .await?;
    let op = Arc::new(login("bench").await?);

    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let events = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let warmup = Duration::from_secs(2);
    let start = Instant::now();
    let end = start + warmup + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (c, base, op, hist, events, errors) = (
            c.clone(),
            base.clone(),
            op.clone(),
            hist.clone(),
            events.clone(),
            errors.clone(),
        );
        let steps = args.steps;
        tasks.push(tokio::spawn(async move {
            let mut local =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            'outer: while Instant::now() < end {
                let Ok((201, v)) = post(
                    &c,
                    format!("{base}/api/batches"),
                    &op,
                    json!({ "flow_id": "bench" }),
                )
                .await
                else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let Some(id) = v["batch"]["batch_id"].as_str().map(str::to_string) else {
                    continue;
                };
                if !matches!(
                    post(&c, format!("{base}/api/batches/{id}/start"), &op, json!({})).await,
                    Ok((200, _))
                ) {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                for i in 0..steps {
                    let t = Instant::now();
                    let r = post(
                        &c,
                        format!("{base}/api/batches/{id}/steps/w{i}/mass-check"),
                        &op,
                        json!({ "actual": { "value": "1000.2", "unit": "g" } }),
                    )
                    .await;
                    let us = t.elapsed().as_micros() as u64;
                    match r {
                        Ok((200, _)) => {
                            if t.duration_since(start) > warmup && Instant::now() < end {
                                let _ = local.record(us.max(1));
                                events.fetch_add(2, Ordering::Relaxed);
                            }
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if Instant::now() >= end {
                        break 'outer;
                    }
                }
            }
            if let Ok(mut h) = hist.lock() {
                let _ = h.add(&local);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let h = hist.lock().map_err(|_| anyhow::anyhow!("histogram lock"))?;
    let secs = args.seconds as f64;
    println!(
        "clients: {}   measured: {} s   mass checks: {}   errors: {}",
        args.clients,
        args.seconds,
        h.len(),
        errors.load(Ordering::Relaxed)
    );
    println!(
        "mass-check round trip: p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        h.value_at_quantile(0.50) as f64 / 1000.0,
        h.value_at_quantile(0.90) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
    println!(
        "throughput: {:.0} mass checks/s   batch event appends: {:.0} events/s",
        h.len() as f64 / secs,
        events.load(Ordering::Relaxed) as f64 / secs
    );
    drop(server);
    drop(mongo);
    Ok(())
}
