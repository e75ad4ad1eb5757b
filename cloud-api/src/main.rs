//! `metcon-cloud`: serve the API, run the demo, manage users, verify the audit chain, move
//! data between stores (export / import).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use metcon_cloud::auth::password;
use metcon_cloud::store::{NewAudit, User};
use metcon_cloud::{app, audit, config::Config, demo, telemetry, transfer};
use metcon_shared::role::Role;
use time::OffsetDateTime;

#[derive(Debug, Parser)]
#[command(
    name = "metcon-cloud",
    version,
    about = "METCON cloud API: chain of custody for precious-metal refineries"
)]
struct Cli {
    /// TOML configuration file (environment variables METCON_* override it).
    #[arg(long, global = true, env = "METCON_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Serve with demo data: a gold refining flow and one user per role.
    Demo,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Seed realistic history for demos and benchmarks through the real domain.
    Generate {
        /// Number of batches.
        #[arg(long, default_value_t = 1000)]
        batches: u64,
        /// Days of history, ending now.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Random seed: the same seed gives the same history.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Work with the audit chain.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Write every record of the configured store to a JSON Lines file (format: see
    /// `transfer.rs`). Stop the servers first for a consistent copy.
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Load an export into the configured store, which must be empty; then check the counts
    /// and verify the audit chain.
    Import {
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
    },
    /// Read the scale display in a photo with the configured OCR provider (built-in unless
    /// `[ocr]` says otherwise): value, raw text, confidence and time.
    Ocr {
        image: PathBuf,
        /// The display region of a fixed camera, in pixels: x,y,w,h. Without it the display
        /// is found in the photo.
        #[arg(long, value_parser = parse_roi)]
        roi: Option<metcon_cloud::store::photos::Region>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate the built-in reader on a labelled folder (`labels.csv`: filename,text[,roi])
    /// side by side with ssocr and tesseract when installed.
    OcrEval {
        dir: PathBuf,
        /// The acceptance threshold to report coverage and accuracy at.
        #[arg(long, default_value_t = metcon_ocr::ACCEPT_THRESHOLD)]
        threshold: f32,
        /// Leave out ssocr and tesseract.
        #[arg(long)]
        no_external: bool,
    },
}

fn parse_roi(s: &str) -> Result<metcon_cloud::store::photos::Region, String> {
    let v: Vec<u32> = s
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{s:?} is not x,y,w,h in whole pixels"))?;
    match v.as_slice() {
        [x, y, w, h] if *w > 0 && *h > 0 => Ok(metcon_cloud::store::photos::Region {
            x: *x,
            y: *y,
            w: *w,
            h: *h,
        }),
        _ => Err(format!(
            "{s:?} is not x,y,w,h with a positive width and height"
        )),
    }
}

/// `metcon-cloud ocr`: one photo through the configured provider.
async fn read_display(
    config: &Config,
    path: &std::path::Path,
    roi: Option<metcon_cloud::store::photos::Region>,
    json: bool,
) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("while reading {}", path.display()))?;
    let image = metcon_cloud::photos::Image::parse(bytes.into(), 64 * 1024 * 1024)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let reader = metcon_cloud::ocr::from_config(&config.ocr)?;
    let r = metcon_cloud::ocr::read_and_classify(reader.as_ref(), &image, roi).await;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let value = r.value.map_or("-".to_string(), |v| v.to_string());
        println!("value       {value}");
        println!("raw text    {:?}", r.raw_text);
        println!(
            "confidence  {} ({:?}; accepted at {} and above)",
            r.confidence,
            r.outcome,
            metcon_cloud::ocr::ACCEPT_CONFIDENCE
        );
        if let Some(g) = r.region {
            println!("region      {},{},{},{}", g.x, g.y, g.w, g.h);
        }
        println!("time        {} ms ({})", r.elapsed_ms, r.provider);
        if let Some(e) = &r.error {
            println!("error       {e}");
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from METCON_NEW_PASSWORD or the first line of stdin.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: String,
        /// Comma-separated station ids (operators and supervisors).
        #[arg(long, value_delimiter = ',')]
        stations: Vec<String>,
        #[arg(long)]
        display_name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the chain and report every edited, inserted or deleted record (exit code 1 if any).
    Verify,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    telemetry::init(&config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    rt.block_on(run(cli.command.unwrap_or(Command::Serve), config))
}

async fn run(command: Command, config: Config) -> Result<()> {
    match command {
        Command::Serve => {
            let store = app::open_store(&config).await?;
            let state = app::state(config, store.clone())?;
            let base = base_url(&state.config);
            app::offer_setup_token(store.as_ref(), &base).await?;
            app::serve(state, |_| {}).await
        }
        Command::Demo => {
            let mut config = config;
            // Debian's mosquitto package runs a broker on 1883: take another port then.
            if config.broker.mode == metcon_cloud::config::BrokerMode::Embedded
                && std::net::TcpListener::bind(config.broker.listen).is_err()
            {
                println!(
                    "(port {} is taken; the embedded broker takes a free one)",
                    config.broker.listen.port()
                );
                config.broker.listen.set_port(0);
            }
            let store = app::open_store(&config).await?;
            let creds = demo::seed(store.as_ref(), &config.data_dir).await?;
            let data_dir = config.data_dir.clone();
            let state = app::state(config, store.clone())?;
            let public = state.config.public_url.clone();
            app::serve(state, move |addr| {
                let url = public.unwrap_or_else(|| format!("http://{addr}"));
                let base = format!("http://{addr}");
                tokio::spawn(async move {
                    match metcon_cloud::demo_station::start(store, &data_dir, &base).await {
                        Ok(Some(station)) => {
                            println!(
                                "Simulated scale `{}` (Mettler-Toledo MT-SICS) at station receiving, with an enrolled edge agent.",
                                metcon_cloud::demo_station::DEVICE_ID
                            );
                            println!("  Put a load on it (bash): echo 'set 1000.2' > /dev/tcp/{}   (also: print, tare, zero)", station.control.replace(':', "/"));
                            // the station lives as long as the server
                            std::future::pending::<()>().await;
                            drop(station);
                        }
                        Ok(None) => {}
                        Err(e) => eprintln!("(no simulated scale: {e:#})"),
                    }
                });
                println!();
                println!("METCON demo is running at {url}  (API: {url}/api, OpenAPI: {url}/api/openapi.json)");
                println!("Flow `{}` (Receiving, Refining, Assay, Casting, QC) is published. Log in with:", demo::FLOW_ID);
                for (user, pw, role) in &creds {
                    println!("  {:<10} username {user:<10} password {pw}", role.as_str());
                }
                println!("  curl -X POST {url}/api/auth/login -H 'content-type: application/json' -d '{{\"username\":\"operator\",\"password\":\"…\"}}'");
                println!("Stop with Ctrl-C. Data lives in the data folder; delete it to start over.");
            })
            .await
        }
        Command::Ocr { image, roi, json } => read_display(&config, &image, roi, json).await,
        Command::OcrEval {
            dir,
            threshold,
            no_external,
        } => {
            let report = tokio::task::spawn_blocking(move || {
                metcon_ocr::eval::evaluate(&dir, threshold, !no_external)
            })
            .await??;
            print!("{report}");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    role,
                    stations,
                    display_name,
                },
        } => {
            let role: Role = role.parse()?;
            let username = metcon_cloud::http::users::parse_username(&username)
                .map_err(|e| anyhow::anyhow!(e.detail))?;
            if let Some(bad) = stations.iter().find(|s| !metcon_shared::flow::is_slug(s)) {
                bail!(
                    "station {bad:?} is not a station id (lowercase letters, digits, '_' or '-')"
                );
            }
            let pw = match std::env::var("METCON_NEW_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    eprintln!(
                        "Password for {username} (at least {} characters), then Enter:",
                        password::MIN_LENGTH
                    );
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("while reading the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let hash = password::hash(&pw)?;
            let store = app::open_store(&config).await?;
            let now = OffsetDateTime::now_utc();
            let user = User {
                id: uuid::Uuid::new_v4().to_string(),
                display_name: display_name.unwrap_or_else(|| username.clone()),
                username: username.clone(),
                role,
                stations,
                active: true,
                password_hash: hash,
                created_at: now,
                updated_at: now,
            };
            let a = NewAudit {
                at: now,
                actor: "system".into(),
                action: "user_created".into(),
                target: format!("user:{username}"),
                details: serde_json::json!({ "role": role, "via": "command line" }),
                ip: None,
            };
            store.create_user(&user, &[a]).await?;
            println!("created {role} {username}");
            Ok(())
        }
        Command::Generate {
            batches,
            days,
            seed,
        } => {
            let store = app::open_store(&config).await?;
            let bar = indicatif::ProgressBar::new(batches);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} batches ({per_sec}, eta {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            let opts = metcon_cloud::reports::generate::Options {
                batches,
                days,
                seed,
                now: OffsetDateTime::now_utc(),
            };
            let started = std::time::Instant::now();
            let summary =
                metcon_cloud::reports::generate::generate(store, &opts, |n| bar.set_position(n))
                    .await
                    .context("while generating history")?;
            bar.finish();
            println!(
                "generated {} batches, {} events, {} mass checks ({} out of tolerance, {} OCR mismatches) in {:.1} s",
                summary.batches,
                summary.events,
                summary.mass_checks,
                summary.out_of_tolerance,
                summary.ocr_mismatches,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Export { out } => {
            let store = app::open_store(&config).await?;
            let bar = transfer_bar();
            let counts = transfer::export(store.as_ref(), &out, &bar)
                .await
                .with_context(|| format!("while exporting to {}", out.display()))?;
            bar.finish();
            println!("exported {counts:?} to {}", out.display());
            Ok(())
        }
        Command::Import { input } => {
            let store = app::open_store(&config).await?;
            let bar = transfer_bar();
            let counts = transfer::import(store.as_ref(), &input, &bar)
                .await
                .with_context(|| format!("while importing {}", input.display()))?;
            bar.finish();
            println!("imported {counts:?}; counts match the file and the audit chain verifies");
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let store = app::open_store(&config).await?;
            let report = audit::verify(store.as_ref()).await?;
            if report.ok {
                println!("audit chain intact: {} records", report.records);
                Ok(())
            } else {
                for b in &report.breaks {
                    println!("record {}: {}", b.seq, b.problem);
                }
                bail!(
                    "audit chain broken: {} problem(s) in {} records",
                    report.breaks.len(),
                    report.records
                )
            }
        }
    }
}

fn transfer_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} records ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn base_url(config: &Config) -> String {
    config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen))
}
