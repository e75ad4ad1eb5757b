//! The crash test: while the simulated scale produces readings (auto capture), the broker is
//! stopped and restarted several times and the agent is killed with SIGKILL at random
//! moments and restarted. At the end the subscriber must hold every captured reading: no gap
//! in the sequence, duplicates only as re-deliveries of the same bytes, every signature
//! valid, and the outbox empty.
//!
//! `METCON_CRASH_SEED` replays a run; `METCON_CRASH_ROUNDS` makes it longer.

mod support;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{wait_for, Agent, Broker, Sim, Subscriber};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn kill_9_and_broker_restarts_lose_nothing() {
    let seed = env_u64(
        "METCON_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1),
    );
    let rounds = env_u64("METCON_CRASH_ROUNDS", 12);
    eprintln!("crash test seed {seed} ({rounds} rounds); replay with METCON_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut broker = Broker::start();
    let mut sim = Sim::start("mt-sics", &[]);
    let mut agent = Agent::new(
        broker.port,
        &format!(
            "protocol = \"mt-sics\"\nport = \"{}\"\npoll_ms = 20",
            sim.pty
        ),
        "[capture]\nauto_interval_ms = 50\n",
    );
    sim.set_and_settle("250.00");
    let sub = Subscriber::start(broker.port);
    agent.start();
    sub.set_key(agent.public_key());
    sub.wait_online();

    let mut broker_restarts = 0;
    let mut kills = 0;
    for round in 0..rounds {
        // let it capture for a while, changing the load now and then
        let run_for = Duration::from_millis(rng.gen_range(200..1500));
        let until = Instant::now() + run_for;
        while Instant::now() < until {
            if rng.gen_bool(0.3) {
                sim.cmd(&format!(
                    "set {}.{:02}",
                    rng.gen_range(1..900),
                    rng.gen_range(0..100)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if round % 3 == 1 {
            broker.stop();
            broker_restarts += 1;
            std::thread::sleep(Duration::from_millis(rng.gen_range(100..1500)));
            if rng.gen_bool(0.5) {
                agent.kill9();
                kills += 1;
                agent.start();
            }
            broker.resume();
        } else {
            agent.kill9();
            kills += 1;
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..500)));
            agent.start();
        }
    }
    // stop producing: an overloaded scale gives no stable weight to capture
    sim.cmd("overload");
    let deadline = Duration::from_secs(60);
    wait_for(deadline, "the outbox to drain", || {
        (agent.outbox_depth() == 0).then_some(())
    });
    let acked: u64 = wait_for(deadline, "the acknowledgement watermark", || {
        std::fs::read_to_string(agent.data_dir().join("outbox/acked"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    wait_for(deadline, "the subscriber to receive everything", || {
        sub.with(|s| s.decoded.contains_key(&acked)).then_some(())
    });
    if std::env::var("METCON_CRASH_DEBUG").is_ok() {
        eprintln!("{}\n{}", broker.logs(), agent.logs());
    }
    let last = sub.assert_complete();
    assert_eq!(
        last, acked,
        "the subscriber's newest reading is the agent's newest"
    );
    assert!(
        last > rounds,
        "too few readings were captured ({last}) for the test to mean anything\n{}",
        agent.logs()
    );
    let duplicates = sub.with(|s| s.readings.len() as u64 - last);
    eprintln!(
        "crash test: {last} readings, {duplicates} re-deliveries, {kills} SIGKILLs, {broker_restarts} broker restarts"
    );
}
