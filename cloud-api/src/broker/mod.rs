//! The MQTT broker as the cloud sees it: how ingest connects, what devices are told at
//! enrollment, and how device logins are granted and revoked.
//!
//! Embedded (the default): rumqttd runs in this process on a loopback port ([`embedded`])
//! behind the device gate ([`gate`]), which enforces logins and per-device topics. External
//! (Mosquitto, EMQX, HiveMQ): ingest connects to the configured broker with the cloud's own
//! login; on Mosquitto, device logins are managed through the dynamic security plugin
//! ([`dynsec`]). Switching is configuration only.

pub mod backlog;
pub mod dynsec;
pub mod embedded;
pub mod gate;
pub mod receipts;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use metcon_shared::device::BrokerEndpoint;
use metcon_shared::reading::MAX_ENVELOPE_BYTES;
use metcon_shared::topic::DeviceId;
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use tokio::sync::watch;

use crate::config::{BrokerConfig, BrokerMode, DeviceAccessMode};
use crate::store::Store;

/// How device broker logins are granted and revoked.
#[derive(Debug, Clone)]
pub enum DeviceAccess {
    /// The embedded broker: the gate checks the device registry on every login.
    Gate(Arc<gate::Gate>),
    /// Mosquitto's dynamic security plugin.
    Dynsec(dynsec::DynsecAdmin),
    /// Provisioned outside METCON.
    Manual,
}

impl DeviceAccess {
    /// Makes `password` the device's broker login (the registry already holds its hash).
    pub async fn grant(&self, device: &DeviceId, password: &str) -> Result<()> {
        match self {
            DeviceAccess::Gate(_) | DeviceAccess::Manual => Ok(()),
            DeviceAccess::Dynsec(d) => d.grant(device, password).await,
        }
    }

    /// Ends the device's broker access now, including open connections.
    pub async fn revoke(&self, device: &DeviceId) -> Result<()> {
        match self {
            DeviceAccess::Gate(g) => {
                g.kick(device.as_str());
                Ok(())
            }
            DeviceAccess::Dynsec(d) => d.revoke(device).await,
            DeviceAccess::Manual => Ok(()),
        }
    }
}

/// The running broker side of this replica.
#[derive(Debug, Clone)]
pub struct Broker {
    /// How this replica's ingest client connects.
    pub cloud: MqttOptions,
    /// What devices are told at enrollment.
    pub endpoint: BrokerEndpoint,
    pub access: DeviceAccess,
    /// The embedded gate's address, when embedded.
    pub gate_addr: Option<SocketAddr>,
    /// Back-pressure from ingest to the gate, when embedded (see `backlog`).
    pub backlog: Option<Arc<backlog::Backlog>>,
    /// When embedded: the gate holds devices' PUBACKs until ingest reports the message
    /// finished here, and ingest acknowledges rumqttd at once (see `receipts`).
    pub receipts: Option<Arc<receipts::Receipts>>,
}

fn base_options(c: &BrokerConfig, client_id: &str, host: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, host, port);
    // Generous: while the broker floods this client with a backlog its PINGRESP waits behind
    // the messages, and a 10 s keep-alive made ingest drop and re-establish its session three
    // times in one Mosquitto benchmark run. A dead TCP connection is still noticed.
    o.set_keep_alive(Duration::from_secs(45));
    // A persistent session: readings queue at the broker while this replica restarts.
    o.set_clean_session(false);
    o.set_manual_acks(true);
    o.set_inflight(u16::MAX / 2);
    let max = c.max_photo_bytes.max(MAX_ENVELOPE_BYTES) + 64 * 1024;
    o.set_max_packet_size(max, max);
    o
}

fn read_pem(path: &Option<std::path::PathBuf>) -> Result<Option<String>> {
    path.as_ref()
        .map(|p| {
            std::fs::read_to_string(p).with_context(|| format!("while reading {}", p.display()))
        })
        .transpose()
}

/// Starts what this replica needs of the broker. Embedded: rumqttd and the device gate
/// (prints `METCON broker listening on mqtt://ADDR`).
pub async fn start(
    c: &BrokerConfig,
    store: Arc<dyn Store>,
    shutdown: watch::Receiver<bool>,
) -> Result<Broker> {
    match c.mode {
        BrokerMode::Embedded => {
            let max = c.max_photo_bytes.max(MAX_ENVELOPE_BYTES) + 64 * 1024;
            let internal = tokio::task::spawn_blocking(move || embedded::start(max))
                .await
                .context("while starting the embedded broker")??;
            let tls = match (&c.tls_cert_file, &c.tls_key_file) {
                (Some(cert), Some(key)) => Some(gate::tls_acceptor(cert, key)?),
                _ => None,
            };
            let listener = tokio::net::TcpListener::bind(c.listen)
                .await
                .with_context(|| format!("while binding the broker gate on {}", c.listen))?;
            let addr = listener.local_addr()?;
            let tls_on = tls.is_some();
            let backlog = Arc::new(backlog::Backlog::new(backlog::DEFAULT_LIMIT));
            let receipts = Arc::new(receipts::Receipts::new());
            let gate = Arc::new(gate::Gate::new(
                store,
                internal.clone(),
                tls,
                c.max_photo_bytes,
                backlog.clone(),
                receipts.clone(),
            ));
            tokio::spawn(gate.clone().serve(listener, shutdown));
            println!(
                "METCON broker listening on {}://{addr}",
                if tls_on { "mqtts" } else { "mqtt" }
            );
            let mut cloud = base_options(c, &c.client_id, "127.0.0.1", internal.addr.port());
            cloud.set_credentials(internal.username.clone(), internal.password.clone());
            Ok(Broker {
                cloud,
                endpoint: BrokerEndpoint {
                    host: c
                        .public_host
                        .clone()
                        .unwrap_or_else(|| addr.ip().to_string()),
                    port: c.public_port.unwrap_or(addr.port()),
                    tls: tls_on,
                    ca_pem: read_pem(&c.device_ca_file)?,
                },
                access: DeviceAccess::Gate(gate),
                gate_addr: Some(addr),
                backlog: Some(backlog),
                receipts: Some(receipts),
            })
        }
        BrokerMode::External => {
            let broker_ca = read_pem(&c.tls_ca_file)?;
            let external = {
                let c = c.clone();
                let ca = broker_ca.clone();
                move |client_id: String| {
                    let mut o = base_options(&c, &client_id, &c.host, c.port);
                    if let (Some(u), Some(p)) = (&c.username, &c.password) {
                        o.set_credentials(u.clone(), p.clone());
                    }
                    if let Some(ca) = &ca {
                        o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                            ca: ca.clone().into_bytes(),
                            alpn: None,
                            client_auth: None,
                        }));
                    }
                    o
                }
            };
            let cloud = external(c.client_id.clone());
            let access = match c.device_access {
                DeviceAccessMode::Dynsec => {
                    let admin = dynsec::DynsecAdmin::new(Arc::new(external), c.client_id.clone());
                    let user = c.username.clone().unwrap_or_default();
                    if let Err(e) = admin.bootstrap(&user).await {
                        tracing::error!(error = %format!("{e:#}"), "cannot give the cloud login its role on the broker; commands to devices may be refused");
                    }
                    DeviceAccess::Dynsec(admin)
                }
                DeviceAccessMode::Manual => DeviceAccess::Manual,
            };
            Ok(Broker {
                endpoint: BrokerEndpoint {
                    host: c.public_host.clone().unwrap_or_else(|| c.host.clone()),
                    port: c.public_port.unwrap_or(c.port),
                    tls: broker_ca.is_some(),
                    ca_pem: read_pem(&c.device_ca_file)?.or(broker_ca),
                },
                cloud,
                access,
                gate_addr: None,
                backlog: None,
                receipts: None,
            })
        }
    }
}
