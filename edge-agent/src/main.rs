//! `metcon-edge`: the agent beside each scale, and the tools to look at it.
//!
//! `run` starts the agent from a TOML configuration; `status` shows what the running agent
//! last wrote (connection, outbox depth, last reading, scale state); `inspect` decodes and
//! verifies a signed reading or key rotation; `scales probe PORT` finds the protocol a scale
//! speaks; `enroll` registers the box with the cloud and writes its configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use metcon_edge::config::Config;
use metcon_edge::health::Health;
use metcon_edge::keystore;
use metcon_edge::outbox::Outbox;
use metcon_edge::scale::probe;
use metcon_edge::scale::transport::Link;
use metcon_shared::reading;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "METCON edge agent: signed scale readings to the cloud"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the agent.
    Run {
        #[arg(
            long,
            short,
            env = "METCON_EDGE_CONFIG",
            default_value = "/etc/metcon/edge.toml"
        )]
        config: PathBuf,
    },
    /// Validate the configuration file and exit.
    Check {
        #[arg(
            long,
            short,
            env = "METCON_EDGE_CONFIG",
            default_value = "/etc/metcon/edge.toml"
        )]
        config: PathBuf,
    },
    /// Show the agent's state: connection, outbox depth, last reading, scale state.
    Status {
        #[arg(
            long,
            short,
            env = "METCON_EDGE_CONFIG",
            default_value = "/etc/metcon/edge.toml"
        )]
        config: PathBuf,
    },
    /// Decode and verify a signed reading (a file with the COSE bytes, or hex).
    Inspect {
        /// File path, or hex of the envelope.
        reading: String,
        /// Public key file (hex); defaults to the device key of --config.
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long, short, env = "METCON_EDGE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Enroll this box with the cloud using the one-time code an admin created, and write
    /// the configuration (device id, broker and credentials, scale and camera settings).
    Enroll {
        /// The cloud's URL, e.g. https://metcon.plant.example
        #[arg(long, required_unless_present = "uri", conflicts_with = "uri")]
        server: Option<String>,
        /// The enrollment code, e.g. K7QF-3M9T-WX2D-HP4N
        #[arg(
            long,
            env = "METCON_ENROLL_CODE",
            required_unless_present = "uri",
            conflicts_with = "uri"
        )]
        code: Option<String>,
        /// Both at once, as the device page's QR code holds them:
        /// metcon-enroll:?url=<server>&code=<code> (what a scanner types).
        #[arg(long)]
        uri: Option<String>,
        /// Where to write the configuration.
        #[arg(
            long,
            short,
            env = "METCON_EDGE_CONFIG",
            default_value = "/etc/metcon/edge.toml"
        )]
        config: PathBuf,
        /// The agent's data folder (keys, outbox).
        #[arg(long, default_value = "/var/lib/metcon-edge")]
        data_dir: PathBuf,
        /// A private CA certificate (PEM) for the server's HTTPS.
        #[arg(long)]
        server_ca: Option<PathBuf>,
        /// Enroll again even though a configuration exists.
        #[arg(long)]
        force: bool,
    },
    /// Scale tools.
    Scales {
        #[command(subcommand)]
        command: ScalesCmd,
    },
}

#[derive(Debug, Subcommand)]
enum ScalesCmd {
    /// Find which protocol the scale on PORT speaks (a serial device, or host:port with --tcp).
    Probe {
        port: String,
        #[arg(long, default_value_t = 9600)]
        baud: u32,
        #[arg(long)]
        tcp: bool,
        /// How long to wait for each answer, in ms.
        #[arg(long, default_value_t = 700)]
        wait_ms: u64,
    },
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("METCON_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    // Two worker threads are plenty beside one scale; blocking file work has its own pool.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("while starting the runtime")?;
    match cli.command {
        Cmd::Run { config } => rt.block_on(run(&config)),
        Cmd::Enroll {
            server,
            code,
            uri,
            config,
            data_dir,
            server_ca,
            force,
        } => {
            let (server, code) = match (uri, server, code) {
                (Some(uri), _, _) => metcon_shared::device::parse_enrollment_uri(uri.trim())
                    .with_context(|| {
                        format!(
                            "{uri:?} is not an enrollment URI: expected \
                             metcon-enroll:?url=<server>&code=<code>, as the device page's QR \
                             code holds it"
                        )
                    })?,
                (None, Some(server), Some(code)) => (server, code),
                // clap requires both when there is no --uri.
                _ => anyhow::bail!("give --server and --code, or --uri"),
            };
            let opts = metcon_edge::enroll::EnrollOptions {
                server,
                code,
                config: config.clone(),
                data_dir,
                server_ca,
                force,
            };
            let resp = rt.block_on(metcon_edge::enroll::enroll(&opts))?;
            println!(
                "enrolled as device {} at station {} ({}); broker {}:{}{}",
                resp.device_id,
                resp.station_id,
                resp.site,
                resp.broker.host,
                resp.broker.port,
                if resp.broker.tls { " (TLS)" } else { "" }
            );
            println!("configuration written to {}", config.display());
            Ok(())
        }
        Cmd::Check { config } => {
            let c = Config::load(&config)?;
            println!("{}: ok (device {})", config.display(), c.device);
            Ok(())
        }
        Cmd::Status { config } => status(&config),
        Cmd::Inspect {
            reading,
            key,
            config,
        } => inspect(&reading, key.as_deref(), config.as_deref()),
        Cmd::Scales {
            command:
                ScalesCmd::Probe {
                    port,
                    baud,
                    tcp,
                    wait_ms,
                },
        } => rt.block_on(async {
            let link = if tcp {
                Link::Tcp { addr: port.clone() }
            } else {
                Link::serial(&port, baud)
            };
            match probe::probe(&link, Duration::from_millis(wait_ms)).await? {
                Some(found) => {
                    println!("{} (answered {:?})", found.protocol, found.evidence);
                    Ok(())
                }
                None => bail!(
                    "no known protocol answered on {}; a print-line scale only talks when Print is pressed and must be configured",
                    link.describe()
                ),
            }
        }),
    }
}

async fn run(config: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    metcon_edge::agent::run(cfg, rx).await
}

fn status(config: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let public = keystore::read_public(&cfg.key_dir().join(keystore::PUB_FILE))
        .map(|k| hex::encode(k.as_bytes()))
        .unwrap_or_else(|_| "(no key yet)".into());
    // The outbox on disk is the truth for depth, running agent or not.
    let on_disk = Outbox::open(&cfg.outbox_dir(), cfg.outbox)
        .map(|o| (o.depth(), o.last_seq()))
        .context("while reading the outbox")?;
    println!("device:        {}", cfg.device);
    println!("public key:    {public}");
    println!("outbox depth:  {} (on disk)", on_disk.0);
    println!(
        "last sequence: {}",
        on_disk.1.map_or("none".into(), |s| s.to_string())
    );
    match Health::read(&cfg.data_dir) {
        Ok(h) => {
            println!("agent report:  {}", h.updated);
            println!(
                "  broker:      {}",
                if h.mqtt_connected {
                    "connected"
                } else {
                    "disconnected"
                }
            );
            println!(
                "  scale:       {} ({}), shows {}",
                if h.scale_connected {
                    "connected"
                } else {
                    "disconnected"
                },
                h.protocol,
                h.scale_weight.as_deref().unwrap_or("nothing yet")
            );
            println!(
                "  last reading: {}",
                h.last_reading.as_deref().unwrap_or("none")
            );
            if h.outbox_full {
                println!("  ALARM:       outbox full, captures are refused");
            }
        }
        Err(_) => println!("agent report:  none (the agent has not run here)"),
    }
    Ok(())
}

fn inspect(input: &str, key: Option<&Path>, config: Option<&Path>) -> anyhow::Result<()> {
    let bytes = if Path::new(input).is_file() {
        std::fs::read(input).with_context(|| format!("while reading {input}"))?
    } else {
        hex::decode(input.trim()).context("the argument is neither a file nor hex")?
    };
    let key_path = match (key, config) {
        (Some(k), _) => Some(k.to_path_buf()),
        (None, Some(c)) => Some(Config::load(c)?.key_dir().join(keystore::PUB_FILE)),
        (None, None) => None,
    };
    let envelope = reading::Envelope::parse(&bytes).context("while decoding the envelope")?;
    let verdict = match key_path {
        Some(p) => {
            let vk = keystore::read_public(&p)?;
            envelope.verify(&vk).context("signature check failed")?;
            format!("signature valid (key {})", p.display())
        }
        None => "NOT VERIFIED (pass --key or --config)".to_string(),
    };
    println!("key id:    {}", envelope.device());
    println!("{verdict}");
    match envelope.open()? {
        reading::Signed::Reading(r) => println!("{}", serde_json::to_string_pretty(&r)?),
        reading::Signed::KeyRotation(k) => {
            println!("key rotation: {}", serde_json::to_string_pretty(&k)?)
        }
    }
    Ok(())
}
