//! A full outbox refuses new captures and raises the alarm, loses nothing, survives a
//! SIGKILL, and drains in order once the broker is back. `status` and `inspect` read what
//! is on disk.

mod support;

use std::time::Duration;

use support::{wait_for, Agent, Broker, Sim, Subscriber};

#[test]
fn full_outbox_refuses_captures_then_drains_in_order() {
    let mut broker = Broker::stopped(); // the broker is down at first
    let mut sim = Sim::start("ohaus", &[]);
    sim.set_and_settle("42.42");
    let mut agent = Agent::new(
        broker.port,
        &format!("protocol = \"ohaus\"\nport = \"{}\"\npoll_ms = 20", sim.pty),
        "[capture]\nauto_interval_ms = 20\n\n[outbox]\nmax_entries = 5\n",
    );
    agent.start();
    let status = agent.data_dir().join("status.json");
    wait_for(Duration::from_secs(15), "the outbox-full alarm", || {
        let h: metcon_edge::health::Health =
            serde_json::from_slice(&std::fs::read(&status).ok()?).ok()?;
        (h.outbox_full && h.outbox_depth == 5).then_some(())
    });
    assert!(
        agent.logs().contains("ALARM: outbox full"),
        "{}",
        agent.logs()
    );
    agent.kill9();
    assert_eq!(
        agent.outbox_depth(),
        5,
        "nothing dropped, nothing beyond the bound"
    );

    let (ok, text) = agent.cli(&["status"]);
    assert!(ok, "{text}");
    assert!(text.contains("outbox depth:  5"), "{text}");
    assert!(text.contains("ALARM"), "{text}");
    let first = agent.data_dir().join(format!("outbox/{:020}.cose", 1));
    let (ok, text) = agent.cli(&["inspect", first.to_str().expect("utf-8 path")]);
    assert!(ok, "{text}");
    assert!(text.contains("signature valid"), "{text}");
    assert!(text.contains("\"seq\": 1"), "{text}");
    assert!(text.contains("42.42"), "{text}");

    // no more stable weights, then bring the broker back and restart the agent
    sim.cmd("overload");
    broker.resume();
    let sub = Subscriber::start(broker.port);
    sub.set_key(agent.public_key());
    agent.start();
    wait_for(Duration::from_secs(20), "the backlog to arrive", || {
        sub.with(|s| s.decoded.contains_key(&5)).then_some(())
    });
    assert_eq!(sub.assert_in_order(), 5);
    wait_for(Duration::from_secs(10), "the outbox to drain", || {
        (agent.outbox_depth() == 0).then_some(())
    });
}
