//! Agent RSS and CPU at 10 captured readings/s: the simulator (MT-SICS on a pty, polled
//! every 50 ms) → `metcon-edge` with auto capture every 100 ms and live weight at 2 Hz → a
//! real Mosquitto → a verifying subscriber. Samples the agent's VmRSS and CPU time from
//! /proc once a second.
//!
//! `cargo build --release -p metcon-scale-sim -p metcon-edge && METCON_SOAK_SECS=600 cargo bench -p metcon-edge --bench soak`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{wait_for, Agent, Broker, Sim, Subscriber};

fn proc_stat(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields 14 and 15 (utime, stime) are 12 and 13 after the command name
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((rss_kb, ticks))
}

fn main() {
    let secs: u64 = std::env::var("METCON_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let broker = Broker::start();
    let mut sim = Sim::start("mt-sics", &[]);
    sim.set_and_settle("148.30");
    let mut agent = Agent::new(
        broker.port,
        &format!(
            "protocol = \"mt-sics\"\nport = \"{}\"\npoll_ms = 50",
            sim.pty
        ),
        "[capture]\nauto_interval_ms = 100\n",
    );
    let sub = Subscriber::start(broker.port);
    agent.start();
    sub.set_key(agent.public_key());
    sub.wait_online();
    let pid = agent.pid().expect("agent running");
    // warm-up
    std::thread::sleep(Duration::from_secs(3));
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let (_, t0_ticks) = proc_stat(pid).expect("proc");
    let seq0 = sub.with(|s| s.decoded.keys().next_back().copied().unwrap_or(0));
    let t0 = Instant::now();
    let mut max_rss = 0;
    let mut rss_sum = 0;
    let mut samples = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        let (rss, _) = proc_stat(pid).expect("agent alive");
        max_rss = max_rss.max(rss);
        rss_sum += rss;
        samples += 1;
    }
    let (_, t1_ticks) = proc_stat(pid).expect("proc");
    let elapsed = t0.elapsed().as_secs_f64();
    let seq1 = sub.with(|s| s.decoded.keys().next_back().copied().unwrap_or(0));
    let cpu = (t1_ticks - t0_ticks) as f64 / ticks_per_s / elapsed * 100.0;
    wait_for(Duration::from_secs(30), "the outbox to drain", || {
        (agent.outbox_depth() < 5).then_some(())
    });
    sub.assert_complete();
    println!(
        "{secs} s at {:.1} captured readings/s ({} readings): agent RSS max {:.1} MiB, mean {:.1} MiB; CPU {:.2} % of one core",
        (seq1 - seq0) as f64 / elapsed,
        seq1 - seq0,
        max_rss as f64 / 1024.0,
        rss_sum as f64 / samples.max(1) as f64 / 1024.0,
        cpu
    );
}
