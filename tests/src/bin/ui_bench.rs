//! Web UI benchmark: the kiosk step runner's first load (bytes of the page and every asset it
//! references, as sent) and the time to serve the page, measured at the client over loopback
//! (an upper bound of the server's time), for a batch waiting at a mass check.
//!
//! `cargo build --release -p metcon-cloud -p metcon-e2e && target/release/ui_bench --requests 500`

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use metcon_e2e::api::Api;
use metcon_e2e::{sibling_binary, Server};

#[derive(Debug, Parser)]
struct Args {
    /// Timed page loads.
    #[arg(long, default_value_t = 500)]
    requests: u32,
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
    Ok(())
}
