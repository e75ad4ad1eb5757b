//! The embedded broker: rumqttd on a loopback port that only METCON itself can log in to.
//!
//! Devices never reach rumqttd directly: they connect to the device gate (`gate.rs`), which
//! checks their login and every topic, and forwards to this internal listener with the
//! internal credentials. The cloud's own ingest client connects here directly. The
//! credentials are random per start and never leave the process.

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Where the internal broker listens and how to log in to it.
#[derive(Clone)]
pub struct Internal {
    pub addr: SocketAddr,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Internal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Internal")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A free loopback port (bound and released; the broker binds it right after).
fn free_port() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("while finding a free port")?;
    l.local_addr().context("while finding a free port")
}

/// Starts rumqttd on its own thread and returns its internal address and login.
pub fn start(max_payload: usize) -> Result<Internal> {
    let addr = free_port()?;
    let internal = Internal {
        addr,
        username: "metcon-internal".into(),
        password: crate::auth::token::random_token(),
    };
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: max_payload,
        max_inflight_count: 1024,
        auth: Some(HashMap::from([(
            internal.username.clone(),
            internal.password.clone(),
        )])),
        external_auth: None,
        dynamic_filters: true,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 1024,
            // Segments are allocated as data arrives. The log must hold everything between
            // the gate and ingest's commit, or rumqttd drops the oldest segment (messages
            // the devices consider delivered): the gate's back-pressure (`backlog`) keeps
            // that below 8 photos or ~4 MiB of readings, far inside 10 segments.
            max_segment_size: (max_payload + 64 * 1024).max(4 * 1024 * 1024),
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([(
            "internal".to_string(),
            ServerSettings {
                name: "metcon-internal".into(),
                listen: addr,
                tls: None,
                next_connection_delay_ms: 0,
                connections,
            },
        )])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded broker stopped");
            }
        })
        .context("while starting the embedded broker")?;
    wait_listening(addr)?;
    tracing::info!(%addr, "embedded broker (rumqttd) listening on loopback");
    Ok(internal)
}

/// Polls until the broker accepts TCP connections, with a deadline.
fn wait_listening(addr: SocketAddr) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
            .is_ok()
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("the embedded broker did not start listening on {addr} within 10 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
