//! The agent's TOML configuration, parsed into types that cannot be wrong.
//!
//! Until enrollment arrives, the file sets the device id and the broker. The file is read
//! with figment (environment variables `METCON_EDGE_…`, `__` between sections, override it),
//! unknown keys are refused, and [`Config::load`] reports every problem at once with the key
//! it concerns. An example is in `edge-agent/README.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use metcon_shared::mass::MassUnit;
use metcon_shared::topic::DeviceId;
use serde::Deserialize;

use crate::outbox::Limits;
use crate::scale::transport::{Link, ParitySetting};
use crate::scale::Protocol;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    device_id: String,
    data_dir: PathBuf,
    scale: ScaleFile,
    mqtt: MqttFile,
    #[serde(default)]
    capture: CaptureFile,
    #[serde(default)]
    outbox: OutboxFile,
    #[serde(default)]
    camera: CameraFile,
}

fn d_baud() -> u32 {
    9600
}
fn d_8() -> u8 {
    8
}
fn d_1() -> u8 {
    1
}
fn d_poll() -> u64 {
    100
}
fn d_unit() -> String {
    "g".into()
}
fn d_count() -> usize {
    3
}
fn d_window() -> u64 {
    1000
}
fn d_silence() -> u64 {
    3000
}
fn d_parity() -> ParitySetting {
    ParitySetting::None
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleFile {
    /// A protocol name or `auto`.
    protocol: String,
    port: Option<String>,
    tcp: Option<String>,
    #[serde(default = "d_baud")]
    baud: u32,
    #[serde(default = "d_8")]
    data_bits: u8,
    #[serde(default = "d_parity")]
    parity: ParitySetting,
    #[serde(default = "d_1")]
    stop_bits: u8,
    #[serde(default = "d_poll")]
    poll_ms: u64,
    #[serde(default = "d_unit")]
    unit: String,
    #[serde(default = "d_count")]
    stable_count: usize,
    #[serde(default = "d_window")]
    stable_window_ms: u64,
    #[serde(default = "d_silence")]
    silence_ms: u64,
}

fn d_mqtt_port() -> u16 {
    1883
}
fn d_keepalive() -> u64 {
    10
}
fn d_live() -> f64 {
    2.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MqttFile {
    host: String,
    #[serde(default = "d_mqtt_port")]
    port: u16,
    username: Option<String>,
    password: Option<String>,
    #[serde(default = "d_keepalive")]
    keepalive_s: u64,
    #[serde(default = "d_live")]
    live_rate_hz: f64,
    tls: Option<TlsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    ca_file: PathBuf,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureFile {
    /// Capture every stable reading at most this often (benchmarks, continuous logging).
    auto_interval_ms: Option<u64>,
}

fn d_entries() -> u64 {
    100_000
}
fn d_bytes() -> u64 {
    1 << 30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboxFile {
    #[serde(default = "d_entries")]
    max_entries: u64,
    #[serde(default = "d_bytes")]
    max_bytes: u64,
}

impl Default for OutboxFile {
    fn default() -> Self {
        OutboxFile {
            max_entries: d_entries(),
            max_bytes: d_bytes(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraFile {
    /// `none` (default), `file`, `http` or `v4l2`.
    kind: Option<String>,
    path: Option<PathBuf>,
    url: Option<String>,
    device: Option<String>,
}

/// Which protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolChoice {
    Auto,
    Fixed(Protocol),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScaleConfig {
    pub protocol: ProtocolChoice,
    pub link: Link,
    pub poll: Duration,
    pub unit: MassUnit,
    pub stable_count: usize,
    pub stable_window: Duration,
    pub silence: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub ca_file: PathBuf,
    pub client_auth: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
    pub keepalive: Duration,
    pub live_rate_hz: f64,
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraConfig {
    None,
    /// A file, or a folder whose images are taken in name order, round robin.
    File(PathBuf),
    Http(String),
    V4l2(String),
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub device: DeviceId,
    pub data_dir: PathBuf,
    pub scale: ScaleConfig,
    pub mqtt: MqttConfig,
    pub auto_capture: Option<Duration>,
    pub outbox: Limits,
    pub camera: CameraConfig,
}

/// Every problem found in a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} not found")]
    NotFound(PathBuf),
    #[error("configuration file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("configuration file {path} has problems:\n  - {}", problems.join("\n  - "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if !path.is_file() {
            return Err(ConfigError::NotFound(path.to_path_buf()));
        }
        let file: File = Figment::new()
            .merge(Toml::file(path))
            .merge(Env::prefixed("METCON_EDGE_").split("__"))
            .extract()
            .map_err(|e| ConfigError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        validate(file).map_err(|problems| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }

    /// Parses TOML text (tests, `--check`).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let path = PathBuf::from("<inline>");
        let file: File = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Syntax {
                path: path.clone(),
                message: e.to_string(),
            })?;
        validate(file).map_err(|problems| ConfigError::Invalid { path, problems })
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    pub fn key_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }
}

fn validate(f: File) -> Result<Config, Vec<String>> {
    let mut p = Vec::new();
    let device = DeviceId::parse(&f.device_id)
        .map_err(|e| p.push(format!("device_id: {e}")))
        .ok();
    if f.data_dir.as_os_str().is_empty() {
        p.push("data_dir: must not be empty".into());
    }
    let s = &f.scale;
    let protocol = if s.protocol == "auto" {
        Some(ProtocolChoice::Auto)
    } else {
        match s.protocol.parse::<Protocol>() {
            Ok(pr) => Some(ProtocolChoice::Fixed(pr)),
            Err(_) => {
                let names: Vec<_> = Protocol::ALL.iter().map(|p| p.name()).collect();
                p.push(format!(
                    "scale.protocol: {:?} is not one of auto, {}",
                    s.protocol,
                    names.join(", ")
                ));
                None
            }
        }
    };
    let link = match (&s.port, &s.tcp) {
        (Some(port), None) => Some(Link::Serial {
            path: port.clone(),
            baud: s.baud,
            data_bits: s.data_bits,
            parity: s.parity,
            stop_bits: s.stop_bits,
        }),
        (None, Some(addr)) => Some(Link::Tcp { addr: addr.clone() }),
        _ => {
            p.push(
                "scale: set exactly one of `port` (a serial device) or `tcp` (host:port)".into(),
            );
            None
        }
    };
    if ![1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200].contains(&s.baud) {
        p.push(format!("scale.baud: {} is not a standard rate", s.baud));
    }
    if !matches!(s.data_bits, 7 | 8) {
        p.push("scale.data_bits: 7 or 8".into());
    }
    if !matches!(s.stop_bits, 1 | 2) {
        p.push("scale.stop_bits: 1 or 2".into());
    }
    if !(10..=10_000).contains(&s.poll_ms) {
        p.push("scale.poll_ms: between 10 and 10000".into());
    }
    if !(1..=100).contains(&s.stable_count) {
        p.push("scale.stable_count: between 1 and 100".into());
    }
    let unit = s
        .unit
        .parse::<MassUnit>()
        .map_err(|e| p.push(format!("scale.unit: {e}")))
        .ok();
    let m = &f.mqtt;
    if m.host.trim().is_empty() {
        p.push("mqtt.host: must not be empty".into());
    }
    let credentials = match (&m.username, &m.password) {
        (Some(u), Some(pw)) => Some((u.clone(), pw.clone())),
        (None, None) => None,
        _ => {
            p.push("mqtt: set both `username` and `password`, or neither".into());
            None
        }
    };
    if !(m.live_rate_hz >= 0.0 && m.live_rate_hz <= 50.0) {
        p.push("mqtt.live_rate_hz: between 0 (off) and 50".into());
    }
    if !(1..=3600).contains(&m.keepalive_s) {
        p.push("mqtt.keepalive_s: between 1 and 3600".into());
    }
    let tls = m.tls.as_ref().map(|t| TlsConfig {
        ca_file: t.ca_file.clone(),
        client_auth: match (&t.client_cert, &t.client_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => {
                p.push("mqtt.tls: set both `client_cert` and `client_key`, or neither".into());
                None
            }
        },
    });
    if let Some(ms) = f.capture.auto_interval_ms {
        if ms < 10 {
            p.push("capture.auto_interval_ms: at least 10".into());
        }
    }
    if f.outbox.max_entries == 0 || f.outbox.max_bytes < 4096 {
        p.push("outbox: max_entries at least 1 and max_bytes at least 4096".into());
    }
    let c = &f.camera;
    let camera = match c.kind.as_deref().unwrap_or("none") {
        "none" => Some(CameraConfig::None),
        "file" => match &c.path {
            Some(path) => Some(CameraConfig::File(path.clone())),
            None => {
                p.push("camera.path: required for kind = \"file\"".into());
                None
            }
        },
        "http" => match &c.url {
            Some(u) if u.starts_with("http://") => Some(CameraConfig::Http(u.clone())),
            _ => {
                p.push(
                    "camera.url: an http:// snapshot URL is required for kind = \"http\"".into(),
                );
                None
            }
        },
        "v4l2" => Some(CameraConfig::V4l2(
            c.device.clone().unwrap_or_else(|| "/dev/video0".into()),
        )),
        other => {
            p.push(format!(
                "camera.kind: {other:?} is not one of none, file, http, v4l2"
            ));
            None
        }
    };
    match (device, protocol, link, unit, camera) {
        (Some(device), Some(protocol), Some(link), Some(unit), Some(camera)) if p.is_empty() => {
            Ok(Config {
                device,
                data_dir: f.data_dir,
                scale: ScaleConfig {
                    protocol,
                    link,
                    poll: Duration::from_millis(s.poll_ms),
                    unit,
                    stable_count: s.stable_count,
                    stable_window: Duration::from_millis(s.stable_window_ms),
                    silence: Duration::from_millis(s.silence_ms),
                },
                mqtt: MqttConfig {
                    host: m.host.clone(),
                    port: m.port,
                    credentials,
                    keepalive: Duration::from_secs(m.keepalive_s),
                    live_rate_hz: m.live_rate_hz,
                    tls,
                },
                auto_capture: f.capture.auto_interval_ms.map(Duration::from_millis),
                outbox: Limits {
                    max_entries: f.outbox.max_entries,
                    max_bytes: f.outbox.max_bytes,
                },
                camera,
            })
        }
        _ => Err(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
device_id = "scale-01"
data_dir = "/var/lib/metcon-edge"
[scale]
protocol = "mt-sics"
port = "/dev/ttyUSB0"
[mqtt]
host = "broker.local"
"#;

    #[test]
    fn minimal_file_gets_defaults() {
        let c = Config::from_toml(GOOD).expect("valid");
        assert_eq!(c.device.as_str(), "scale-01");
        assert_eq!(c.scale.protocol, ProtocolChoice::Fixed(Protocol::MtSics));
        assert_eq!(c.scale.link, Link::serial("/dev/ttyUSB0", 9600));
        assert_eq!(c.mqtt.port, 1883);
        assert_eq!(c.camera, CameraConfig::None);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let bad = r#"
device_id = "Scale 01"
data_dir = "/x"
[scale]
protocol = "fancy"
port = "/dev/ttyUSB0"
tcp = "10.0.0.1:4001"
baud = 1234
[mqtt]
host = ""
username = "u"
"#;
        let msg = Config::from_toml(bad).expect_err("invalid").to_string();
        for key in [
            "device_id",
            "scale.protocol",
            "exactly one of",
            "scale.baud",
            "mqtt.host",
            "username",
        ] {
            assert!(msg.contains(key), "{key} missing in:\n{msg}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let msg = Config::from_toml(&format!("{GOOD}\nbaud_rate = 9600\n"))
            .expect_err("unknown key")
            .to_string();
        assert!(msg.contains("baud_rate"), "{msg}");
    }
}
