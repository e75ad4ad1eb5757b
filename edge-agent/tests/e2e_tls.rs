//! The agent reaches the broker over TLS (server certificate checked against a configured
//! CA); a reading captured on command arrives signed.

mod support;

use std::time::Duration;

use metcon_shared::reading::Measurement;
use support::{wait_for, Agent, Broker, Sim, Subscriber};

#[test]
fn readings_travel_over_tls() {
    let broker = Broker::start_tls();
    let tls_port = broker.tls_port.expect("TLS listener");
    let mut sim = Sim::start("mt-sics", &[]);
    let mut agent = Agent::with_mqtt(
        &format!("host = \"localhost\"\nport = {tls_port}"),
        &format!(
            "protocol = \"mt-sics\"\nport = \"{}\"\npoll_ms = 50",
            sim.pty
        ),
        &format!("[mqtt.tls]\nca_file = \"{}\"", broker.ca_file().display()),
    );
    let sub = Subscriber::start(broker.port);
    agent.start();
    sub.set_key(agent.public_key());
    sub.wait_online();
    sim.set_and_settle("77.70");
    sub.command(r#"{"cmd":"capture"}"#);
    let r = wait_for(Duration::from_secs(15), "the reading over TLS", || {
        sub.with(|s| s.decoded.get(&1).cloned())
    });
    assert!(matches!(r.measurement, Measurement::Weight { net, .. } if net.to_string() == "77.70"));
    assert!(agent.logs().contains("connected to the broker"));
}

#[test]
fn an_untrusted_broker_is_refused() {
    let broker = Broker::start_tls();
    let other = Broker::start_tls(); // a different CA
    let tls_port = broker.tls_port.expect("TLS listener");
    let sim = Sim::start("mt-sics", &[]);
    let mut agent = Agent::with_mqtt(
        &format!("host = \"localhost\"\nport = {tls_port}"),
        &format!("protocol = \"mt-sics\"\nport = \"{}\"", sim.pty),
        &format!("[mqtt.tls]\nca_file = \"{}\"", other.ca_file().display()),
    );
    agent.start();
    wait_for(Duration::from_secs(15), "a refused TLS handshake", || {
        agent
            .logs()
            .contains("broker connection lost")
            .then_some(())
    });
    assert!(
        !agent.logs().contains("connected to the broker"),
        "{}",
        agent.logs()
    );
}
