//! Web UI benchmark: the kiosk step runner's first load (bytes of the page and every asset it
//! references, as sent) and the time to serve the page, measured at the client over loopback
//! (an upper bound of the server's time), for a batch waiting at a mass check; then the live
//! weight in a real headless Chromium: the scale simulator on a pty → enrolled `metcon-edge` →
//! embedded broker → cloud → the page's event stream, from the simulated scale becoming stable
//! to the page showing that weight as stable (a `MutationObserver` in the page notes the time;
//! the browser and this program read the same wall clock).
//!
//! `cargo build --release --workspace --bins && target/release/ui_bench --requests 500 --live-trials 100`

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use metcon_e2e::api::{Api, Tokens, PASSWORD};
use metcon_e2e::browser::Browser;
use metcon_e2e::edge::Edge;
use metcon_e2e::scale_sim::Sim;
use metcon_e2e::{sibling_binary, Server};

#[derive(Debug, Parser)]
struct Args {
    /// Timed page loads.
    #[arg(long, default_value_t = 500)]
    requests: u32,
    /// Live-weight trials in Chromium (0: skip; needs `chromium` and `chromium-driver`).
    #[arg(long, default_value_t = 100)]
    live_trials: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The local `src`/`href` of `<script>` and stylesheet `<link>` tags.
fn assets(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            if let Some(end) = part.find('"') {
                let url = &part[..end];
                if url.starts_with("/assets/") && !out.iter().any(|u| u == url) {
                    out.push(url.to_string());
                }
            }
        }
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let server = Server::start(&sibling_binary("metcon-cloud")?, dir.path(), &[])?;
    let api = Api::new(&server.base);
    let setup = server
        .setup_token
        .as_deref()
        .context("the server printed no setup token")?;
    let t = api.bootstrap(setup).await;
    api.publish_weigh_flow(&t.admin, "gold", "1000", "0.5")
        .await;
    let id = api.started_batch(&t.operator, "gold").await;
    let page = format!("{}/batches/{id}", server.base);
    let cookie = format!("metcon_access={}", t.operator);
    let c = reqwest::Client::new();

    let get = |url: String| {
        let c = c.clone();
        let cookie = cookie.clone();
        async move {
            let res = c.get(&url).header("cookie", cookie).send().await?;
            let status = res.status();
            let headers: usize = res
                .headers()
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum();
            let body = res.bytes().await?;
            if !status.is_success() {
                bail!("{url}: {status}");
            }
            Ok::<_, anyhow::Error>((headers, body))
        }
    };

    // First load: the page and each asset it references, as a fresh browser would fetch them.
    let (h, html) = get(page.clone()).await?;
    let text = String::from_utf8_lossy(&html).to_string();
    if !text.contains("id=\"capture\"") {
        bail!("the step runner did not show the mass check's Capture button");
    }
    let mut total = h + html.len();
    println!(
        "page                 {:>7} B body, {:>5} B headers",
        html.len(),
        h
    );
    for a in assets(&text) {
        let (h, body) = get(format!("{}{a}", server.base)).await?;
        println!("{a:<20} {:>7} B body, {:>5} B headers", body.len(), h);
        total += h + body.len();
    }
    println!(
        "first load total     {total:>7} B ({:.1} KB)",
        total as f64 / 1024.0
    );

    // Server time of the page: sequential loads after a warm-up.
    for _ in 0..20 {
        get(page.clone()).await?;
    }
    let mut times = Vec::with_capacity(args.requests as usize);
    for _ in 0..args.requests {
        let t0 = Instant::now();
        get(page.clone()).await?;
        times.push(t0.elapsed());
    }
    times.sort();
    println!(
        "step runner page x{}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.requests,
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.95).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
    if args.live_trials > 0 {
        live_weight(&server.base, &api, &t, &id, args.live_trials).await?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, as the browser's `Date.now()` counts them.
fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

/// Notes, in the page, every change of the live weight and its stable mark with the time.
/// Installed again whenever the page was reloaded.
const OBSERVE: &str = "if (!window.__live) { window.__live = [];
  var w = document.getElementById('live-weight'), s = document.getElementById('stable');
  var note = function () { window.__live.push([Date.now(), w.textContent, s.textContent]); };
  var o = { childList: true, characterData: true, subtree: true };
  new MutationObserver(note).observe(w, o); new MutationObserver(note).observe(s, o); }
  var l = window.__live; window.__live = []; return l;";

async fn live_weight(base: &str, api: &Api, t: &Tokens, batch: &str, trials: usize) -> Result<()> {
    let mut sim = Sim::start("mt-sics", &["--capacity", "5000"]);
    let code = api
        .register_device(&t.admin, "scale-01", "mt-sics", &sim.pty)
        .await;
    let mut edge = Edge::enroll(base, &code);
    edge.start();
    let b = Browser::start(base).await?;
    b.login("operator", PASSWORD).await?;
    b.open(&format!("/batches/{batch}")).await?;
    b.client.execute(OBSERVE, vec![]).await?;
    let mut lat = Vec::with_capacity(trials);
    for i in 0..trials {
        let load = format!("{}.{:02}", 200 + (i % 7) * 50, i % 100);
        sim.cmd(&format!("set {load}"));
        let settled = loop {
            if sim.cmd("status").contains("stable=true") {
                break wall_ms();
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let want = format!("{load} g");
        let deadline = Instant::now() + Duration::from_secs(5);
        let shown = 'poll: loop {
            let seen = b.client.execute(OBSERVE, vec![]).await?;
            for e in seen.as_array().into_iter().flatten() {
                if e[1] == want.as_str() && e[2] == "stable" {
                    break 'poll e[0].as_f64();
                }
            }
            if Instant::now() > deadline {
                eprintln!(
                    "trial {i}: {want} not shown stable within 5 s\n{}",
                    edge.logs()
                );
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(at) = shown {
            lat.push(Duration::from_secs_f64(((at - settled).max(0.0)) / 1e3));
        }
    }
    b.close().await?;
    if lat.is_empty() {
        bail!("the live weight was never shown");
    }
    lat.sort();
    println!(
        "live weight in Chromium, {} of {trials} trials: scale stable → shown stable p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.9).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
    );
    Ok(())
}
