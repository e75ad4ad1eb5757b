//! Configuration: defaults, then a TOML file, then `METCON_*` environment variables.
//!
//! Every field has a default that runs a one-box install (embedded SQLite in `./data`), so
//! the server starts with no file at all. Secrets are never taken from the TOML file into
//! logs: `Config`'s `Debug` output leaves them out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    pub listen: SocketAddr,
    /// Folder for the database, the token secret and (later) photos.
    pub data_dir: PathBuf,
    /// The store: an SQLite file (relative paths are inside `data_dir`), or a MongoDB URI
    /// (`mongodb://…` or `mongodb+srv://…`; the database is the URI's path, else `metcon`).
    pub database: PathBuf,
    /// Accept a standalone MongoDB server (no replica set) as able to run transactions.
    /// Real MongoDB cannot; only for wire-protocol stand-ins in tests and benchmarks.
    pub mongodb_standalone_transactions: bool,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// tracing filter, e.g. `info,metcon_cloud=debug`.
    pub log_filter: String,
    /// Secret for signing access tokens (≥ 32 bytes). Unset: generated once and kept in
    /// `data_dir/token.secret` with mode 0600.
    pub token_secret: Option<String>,
    pub access_token_minutes: i64,
    pub refresh_token_hours: i64,
    /// A session unused for this long is over: the next request must log in again.
    pub idle_timeout_seconds: i64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Set the `Secure` attribute on cookies. Turn off only for plain-HTTP development.
    pub cookie_secure: bool,
    /// Public base URL printed at start, e.g. `https://metcon.plant.example`.
    pub public_url: Option<String>,
    /// The MQTT broker devices publish to (`[broker]`).
    pub broker: BrokerConfig,
    /// The ingest pipeline (`[ingest]`).
    pub ingest: IngestConfig,
    /// Photo evidence: where it is stored and how it is served (`[photos]`).
    pub photos: PhotosConfig,
    /// Reading scale displays from photos (`[ocr]`).
    pub ocr: OcrConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhotoBackend {
    /// A folder (`photos.dir`, default `data_dir/photos`).
    Local,
    /// An S3-compatible bucket (`[photos.s3]`).
    S3,
}

/// Photo evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhotosConfig {
    pub backend: PhotoBackend,
    /// Local backend: the folder (relative paths are inside `data_dir`).
    pub dir: PathBuf,
    /// Largest photo an operator may upload.
    pub max_upload_bytes: usize,
    /// How long a photo URL handed to a browser stays valid.
    pub url_ttl_seconds: u64,
    pub s3: S3Config,
}

impl Default for PhotosConfig {
    fn default() -> Self {
        PhotosConfig {
            backend: PhotoBackend::Local,
            dir: PathBuf::from("photos"),
            max_upload_bytes: 10 * 1024 * 1024,
            url_ttl_seconds: 15 * 60,
            s3: S3Config::default(),
        }
    }
}

/// An S3-compatible bucket. Unset region and credentials come from `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`); an unset endpoint
/// from `AWS_ENDPOINT_URL`, else AWS itself. Secrets stay out of `Debug`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub bucket: String,
    /// e.g. `https://minio.plant.example:9000`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// `https://host/bucket/key` rather than `https://bucket.host/key` (most on-premises
    /// servers need it).
    pub path_style: bool,
    /// Prepended to every object key, e.g. `metcon/photos/`.
    pub prefix: String,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            path_style: true,
            prefix: String::new(),
        }
    }
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<set>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<set>"),
            )
            .field("path_style", &self.path_style)
            .field("prefix", &self.prefix)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OcrProvider {
    /// METCON's embedded seven-segment reader.
    Builtin,
    /// A private endpoint (`ocr.url`), contract in `docs/ocr-http.md`.
    Http,
}

/// The display reader. The auth header is a secret: `Debug` leaves it out.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcrConfig {
    pub provider: OcrProvider,
    pub url: Option<String>,
    /// Sent with every request, as `Name: value` (e.g. `Authorization: Bearer …`).
    pub auth_header: Option<String>,
    pub timeout_ms: u64,
}

impl Default for OcrConfig {
    fn default() -> Self {
        OcrConfig {
            provider: OcrProvider::Builtin,
            url: None,
            auth_header: None,
            timeout_ms: 5_000,
        }
    }
}

impl std::fmt::Debug for OcrConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcrConfig")
            .field("provider", &self.provider)
            .field("url", &self.url)
            .field("auth_header", &self.auth_header.as_ref().map(|_| "<set>"))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerMode {
    /// rumqttd inside this process behind METCON's device gate (one-box installs).
    Embedded,
    /// Mosquitto, EMQX, HiveMQ…: `host`/`port` below.
    External,
}

/// How device broker logins are provisioned on an external broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceAccessMode {
    /// Mosquitto's dynamic security plugin, managed by METCON over `$CONTROL`.
    Dynsec,
    /// Provisioned outside METCON (the enrollment still hands out the generated password).
    Manual,
}

/// The broker. Secrets stay out of `Debug`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    pub mode: BrokerMode,
    /// Embedded: where the device gate listens (port 0 picks one; the address is printed).
    pub listen: SocketAddr,
    /// Embedded: TLS for the device gate (PEM files). Without them the gate speaks plain MQTT.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// External: the broker's address.
    pub host: String,
    pub port: u16,
    /// External: the CA that signed the broker's certificate (TLS on when set).
    pub tls_ca_file: Option<PathBuf>,
    /// External: the cloud's own broker login.
    pub username: Option<String>,
    pub password: Option<String>,
    pub device_access: DeviceAccessMode,
    /// What devices are told at enrollment; defaults to the gate's or broker's address.
    pub public_host: Option<String>,
    pub public_port: Option<u16>,
    /// A CA certificate (PEM) handed to devices at enrollment for the broker's TLS.
    pub device_ca_file: Option<PathBuf>,
    /// This replica's MQTT client id; unique per replica (persistent session).
    pub client_id: String,
    /// Replicas share ingest through `$share/{share_group}/…` subscriptions.
    pub share_group: String,
    /// Largest photo accepted on a device's `photo` topic.
    pub max_photo_bytes: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            mode: BrokerMode::Embedded,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            tls_cert_file: None,
            tls_key_file: None,
            host: "127.0.0.1".into(),
            port: 1883,
            tls_ca_file: None,
            username: None,
            password: None,
            device_access: DeviceAccessMode::Dynsec,
            public_host: None,
            public_port: None,
            device_ca_file: None,
            client_id: "metcon-cloud".into(),
            share_group: "metcon-ingest".into(),
            max_photo_bytes: 8 * 1024 * 1024,
        }
    }
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("mode", &self.mode)
            .field("listen", &self.listen)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("device_access", &self.device_access)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The ingest pipeline's knobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Off: this replica serves HTTP only and leaves ingest to others.
    pub enabled: bool,
    /// Most readings committed in one transaction (group commit).
    pub max_batch: usize,
    /// How long the first reading of a group may wait for others, in milliseconds.
    pub max_wait_ms: u64,
    /// How long an enrollment code stays valid.
    pub enrollment_code_hours: i64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            enabled: true,
            max_batch: 1024,
            max_wait_ms: 2,
            enrollment_code_hours: 24,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database: PathBuf::from("metcon.db"),
            mongodb_standalone_transactions: false,
            log_format: LogFormat::Human,
            log_filter: "info".into(),
            token_secret: None,
            access_token_minutes: 15,
            refresh_token_hours: 12,
            idle_timeout_seconds: 30 * 60,
            max_body_bytes: 1024 * 1024,
            cookie_secure: true,
            public_url: None,
            broker: BrokerConfig::default(),
            ingest: IngestConfig::default(),
            photos: PhotosConfig::default(),
            ocr: OcrConfig::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database_target())
            .field("log_format", &self.log_format)
            .field("token_secret", &self.token_secret.as_ref().map(|_| "<set>"))
            .field("access_token_minutes", &self.access_token_minutes)
            .field("refresh_token_hours", &self.refresh_token_hours)
            .field("idle_timeout_seconds", &self.idle_timeout_seconds)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("cookie_secure", &self.cookie_secure)
            .field("broker", &self.broker)
            .field("ingest", &self.ingest)
            .field("photos", &self.photos)
            .field("ocr", &self.ocr)
            .finish_non_exhaustive()
    }
}

/// The store `database` selects.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Sqlite(PathBuf),
    /// A MongoDB connection string (may hold a password: `Debug` hides it).
    Mongo(String),
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseTarget::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            DatabaseTarget::Mongo(uri) => write!(f, "{}", crate::store::mongo::redact_uri(uri)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Loads defaults ← `file` (if given) ← environment (`METCON_LISTEN`, `METCON_DATA_DIR`, …).
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Missing(path.to_path_buf()));
            }
            fig = fig.merge(Toml::file(path));
        }
        let config: Config = fig
            .merge(
                Env::prefixed("METCON_")
                    .ignore(&["config", "log", "new_password", "secantusd"])
                    // METCON_TEST_* configure the test harness, not the server.
                    .filter(|k| !k.as_str().to_ascii_lowercase().starts_with("test_"))
                    .split("__"),
            )
            .extract()
            .map_err(|e| ConfigError::Invalid(format!("configuration: {e}")))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("configuration: {m}")));
        if self.access_token_minutes < 1 || self.access_token_minutes > 60 {
            return bad("access_token_minutes must be between 1 and 60");
        }
        if self.idle_timeout_seconds < 1 {
            return bad("idle_timeout_seconds must be at least 1");
        }
        if self.refresh_token_hours < 1 {
            return bad("refresh_token_hours must be at least 1");
        }
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes must be at least 1024");
        }
        if let Some(s) = &self.token_secret {
            if s.len() < 32 {
                return bad("token_secret must be at least 32 characters");
            }
        }
        let b = &self.broker;
        if b.tls_cert_file.is_some() != b.tls_key_file.is_some() {
            return bad("broker.tls_cert_file and broker.tls_key_file go together");
        }
        if b.mode == BrokerMode::External && b.host.trim().is_empty() {
            return bad("broker.host is needed for an external broker");
        }
        if b.client_id.trim().is_empty() || b.share_group.contains(['/', '+', '#']) {
            return bad("broker.client_id must be set and broker.share_group cannot hold / + #");
        }
        if self.ingest.max_batch == 0 || self.ingest.max_batch > 10_000 {
            return bad("ingest.max_batch must be between 1 and 10000");
        }
        if self.ingest.enrollment_code_hours < 1 {
            return bad("ingest.enrollment_code_hours must be at least 1");
        }
        let p = &self.photos;
        if p.max_upload_bytes < 1024 || p.max_upload_bytes > 64 * 1024 * 1024 {
            return bad("photos.max_upload_bytes must be between 1024 and 67108864");
        }
        if p.url_ttl_seconds < 10 || p.url_ttl_seconds > 7 * 24 * 3600 {
            return bad("photos.url_ttl_seconds must be between 10 and 604800");
        }
        if p.backend == PhotoBackend::S3 && p.s3.bucket.trim().is_empty() {
            return bad("photos.s3.bucket is needed for the s3 backend");
        }
        if self.ocr.provider == OcrProvider::Http && self.ocr.url.is_none() {
            return bad("ocr.url is needed for the http provider");
        }
        if self.ocr.timeout_ms < 100 || self.ocr.timeout_ms > 120_000 {
            return bad("ocr.timeout_ms must be between 100 and 120000");
        }
        Ok(())
    }

    /// Which backend `database` names.
    pub fn database_target(&self) -> DatabaseTarget {
        let text = self.database.to_string_lossy();
        if text.starts_with("mongodb://") || text.starts_with("mongodb+srv://") {
            DatabaseTarget::Mongo(text.into_owned())
        } else {
            DatabaseTarget::Sqlite(self.database_path())
        }
    }

    pub fn database_path(&self) -> PathBuf {
        if self.database.is_absolute() {
            self.database.clone()
        } else {
            self.data_dir.join(&self.database)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_file_overrides() {
        let dir = std::env::temp_dir().join(format!("metcon-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("metcon.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9999\"\nidle_timeout_seconds = 600\n",
        )
        .expect("write");
        let c = Config::load(Some(&file)).expect("valid");
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.idle_timeout_seconds, 600);
        std::fs::write(&file, "listen = \"nonsense\"\n").expect("write");
        let err = Config::load(Some(&file)).expect_err("invalid");
        assert!(err.to_string().contains("listen"), "{err}");
        std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").expect("write");
        assert!(Config::load(Some(&file)).is_err());
        assert!(matches!(
            Config::load(Some(&dir.join("absent.toml"))),
            Err(ConfigError::Missing(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_database_selects_the_backend() {
        let c = Config {
            data_dir: PathBuf::from("/srv/metcon"),
            ..Config::default()
        };
        assert_eq!(
            c.database_target(),
            DatabaseTarget::Sqlite(PathBuf::from("/srv/metcon/metcon.db"))
        );
        for uri in [
            "mongodb://metcon:pw@db1,db2/metcon?replicaSet=rs0",
            "mongodb+srv://metcon:pw@cluster.example/metcon",
        ] {
            let c = Config {
                database: PathBuf::from(uri),
                ..Config::default()
            };
            assert_eq!(c.database_target(), DatabaseTarget::Mongo(uri.into()));
            assert!(!format!("{c:?}").contains(":pw@"), "{c:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let c = Config {
            token_secret: Some("super-secret-value-that-is-long-enough".into()),
            ..Config::default()
        };
        assert!(!format!("{c:?}").contains("super-secret"));
    }
}
