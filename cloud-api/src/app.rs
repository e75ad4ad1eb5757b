//! Wiring: open the store, load or create the token secret, build the router and serve until
//! SIGTERM or Ctrl-C, letting in-flight requests finish.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use time::OffsetDateTime;

use crate::auth::throttle::LoginThrottle;
use crate::auth::token::{random_token, token_hash, TokenKeys};
use crate::config::{Config, DatabaseTarget, PhotoBackend};
use crate::http::{self, AppState};
use crate::store::mongo::{MongoOptions, MongoStore};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

/// Opens the configured store: SQLite for a path, MongoDB for a `mongodb://` URI.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    match config.database_target() {
        DatabaseTarget::Sqlite(path) => {
            let store = tokio::task::spawn_blocking(move || {
                SqliteStore::open(&path)
                    .with_context(|| format!("while opening the database {}", path.display()))
            })
            .await
            .context("while opening the database")??;
            Ok(Arc::new(store))
        }
        DatabaseTarget::Mongo(uri) => {
            let opts = MongoOptions {
                standalone_transactions: config.mongodb_standalone_transactions,
            };
            let store = MongoStore::open(&uri, &opts).await.with_context(|| {
                format!(
                    "while opening the MongoDB store {}",
                    crate::store::mongo::redact_uri(&uri)
                )
            })?;
            Ok(Arc::new(store))
        }
    }
}

/// The token secret from configuration, or from `data_dir/token.secret` (created 0600).
fn token_secret(config: &Config) -> Result<Vec<u8>> {
    if let Some(s) = &config.token_secret {
        return Ok(s.as_bytes().to_vec());
    }
    let path = config.data_dir.join("token.secret");
    read_or_create_secret(&path)
}

pub fn read_or_create_secret(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!(
            "{} is shorter than 32 characters; delete it to generate a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("while reading {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("while creating {}", dir.display()))?;
    }
    let secret = random_token();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("while creating {}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    Ok(secret.into_bytes())
}

fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                None
            }
        })
        .clone()
}

pub fn state(config: Config, store: Arc<dyn Store>) -> Result<AppState> {
    let secret = token_secret(&config)?;
    let blobs: Arc<dyn crate::blobs::BlobStore> = match config.photos.backend {
        PhotoBackend::Local => Arc::new(crate::blobs::local::LocalFolder::new(
            config.data_dir.join(&config.photos.dir),
        )),
        PhotoBackend::S3 => Arc::new(
            crate::blobs::s3::S3Blobs::new(&config.photos.s3)
                .context("while configuring the S3 photo store")?,
        ),
    };
    let ocr = crate::ocr::from_config(&config.ocr).context("while loading OCR")?;
    Ok(AppState {
        photo_urls: crate::photos::signed_url::UrlSigner::new(&secret),
        ocr,
        store,
        keys: TokenKeys::new(&secret),
        config: Arc::new(config),
        throttle: Arc::new(LoginThrottle::default()),
        metrics: metrics_handle(),
        flow_cache: Default::default(),
        report_cache: Default::default(),
        hub: Default::default(),
        directory: Default::default(),
        blobs,
        broker: None,
        mqtt: None,
    })
}

/// On a store without users, prints a one-time setup token for the first admin.
pub async fn offer_setup_token(store: &dyn Store, base_url: &str) -> Result<()> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let token = random_token();
    let expires = OffsetDateTime::now_utc() + time::Duration::hours(24);
    store.set_setup_token(&token_hash(&token), expires).await?;
    // Printed to the console once, on purpose, and never logged.
    println!(
        "No users yet. Create the first admin within 24 hours with this one-time setup token:"
    );
    println!("  SETUP TOKEN: {token}");
    println!("  curl -X POST {base_url}/api/setup -H 'content-type: application/json' \\");
    println!("       -d '{{\"token\":\"{token}\",\"username\":\"admin\",\"password\":\"<at least 12 characters>\"}}'");
    println!("  or run: metcon-cloud user create --username admin --role admin");
    Ok(())
}

/// Serves until shutdown. With ingest on, starts the broker side first (embedded: prints
/// `METCON broker listening on mqtt://ADDR`), then prints `METCON listening on http://ADDR`
/// once the HTTP socket is bound.
pub async fn serve(mut state: AppState, on_ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(state.config.listen)
        .await
        .with_context(|| format!("while binding {}", state.config.listen))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if state.config.ingest.enabled {
        let broker =
            crate::broker::start(&state.config.broker, state.store.clone(), stop_rx.clone())
                .await
                .context("while starting the broker side")?;
        let (client, eventloop) = rumqttc::AsyncClient::new(broker.cloud.clone(), 10_000);
        state.broker = Some(Arc::new(broker));
        state.mqtt = Some(client.clone());
        crate::ingest::spawn(state.clone(), client, eventloop, stop_rx.clone()).await;
    }
    println!("METCON listening on http://{addr}");
    on_ready(addr);
    tracing::info!(%addr, "serving");
    let app = http::router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    })
    .await
    .context("while serving HTTP")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
