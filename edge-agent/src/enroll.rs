//! Enrollment: turn a fresh box into a registered device with one command.
//!
//! `metcon-edge enroll --server URL --code CODE` generates the device key pair here (the
//! private key never leaves the box), sends the public key with the one-time code the admin
//! was given, and writes the configuration the cloud answers with: device id, broker address,
//! the device's own broker credentials, scale and camera settings. The written file holds a
//! secret (the broker password), so it is created with mode 0600; an existing configuration is
//! never overwritten unless asked to.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use metcon_shared::device::{CameraSettings, EnrollRequest, EnrollResponse, Parity};
use metcon_shared::reading::PublicKeyHex;
use serde::Serialize;

use crate::keystore;

#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The cloud's base URL, e.g. `https://metcon.plant.example`.
    pub server: String,
    pub code: String,
    /// Where to write the agent configuration.
    pub config: PathBuf,
    /// The agent's data folder (keys, outbox).
    pub data_dir: PathBuf,
    /// A private CA to trust for the server's HTTPS certificate.
    pub server_ca: Option<PathBuf>,
    /// Replace an existing configuration file.
    pub force: bool,
}

/// The agent configuration as enrollment writes it; the field names are the ones
/// `config::File` reads.
#[derive(Debug, Serialize)]
struct EnrolledFile {
    device_id: String,
    data_dir: PathBuf,
    scale: EnrolledScale,
    mqtt: EnrolledMqtt,
    camera: EnrolledCamera,
}

#[derive(Debug, Serialize)]
struct EnrolledScale {
    protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<String>,
    baud: u32,
    data_bits: u8,
    parity: &'static str,
    stop_bits: u8,
    unit: String,
}

#[derive(Debug, Serialize)]
struct EnrolledMqtt {
    host: String,
    port: u16,
    username: String,
    password: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<EnrolledTls>,
}

#[derive(Debug, Serialize)]
struct EnrolledTls {
    ca_file: PathBuf,
}

#[derive(Debug, Serialize)]
struct EnrolledCamera {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<String>,
}

fn render(
    resp: &EnrollResponse,
    data_dir: &Path,
    ca_file: Option<PathBuf>,
) -> anyhow::Result<String> {
    let s = &resp.scale;
    let camera = match &resp.camera {
        CameraSettings::None => EnrolledCamera {
            kind: "none",
            path: None,
            url: None,
            device: None,
        },
        CameraSettings::V4l2 { device } => EnrolledCamera {
            kind: "v4l2",
            path: None,
            url: None,
            device: Some(device.clone()),
        },
        CameraSettings::Http { url } => EnrolledCamera {
            kind: "http",
            path: None,
            url: Some(url.clone()),
            device: None,
        },
        CameraSettings::File { path } => EnrolledCamera {
            kind: "file",
            path: Some(path.clone()),
            url: None,
            device: None,
        },
    };
    let file = EnrolledFile {
        device_id: resp.device_id.to_string(),
        data_dir: data_dir.to_path_buf(),
        scale: EnrolledScale {
            protocol: s.protocol.clone(),
            port: s.port.clone(),
            tcp: s.tcp.clone(),
            baud: s.baud,
            data_bits: s.data_bits,
            parity: match s.parity {
                Parity::None => "none",
                Parity::Even => "even",
                Parity::Odd => "odd",
            },
            stop_bits: s.stop_bits,
            unit: s.unit.to_string(),
        },
        mqtt: EnrolledMqtt {
            host: resp.broker.host.clone(),
            port: resp.broker.port,
            username: resp.username.clone(),
            password: resp.password.clone(),
            tls: ca_file.map(|ca_file| EnrolledTls { ca_file }),
        },
        camera,
    };
    let body = toml::to_string_pretty(&file).context("while writing the configuration")?;
    Ok(format!(
        "# Written by `metcon-edge enroll` for device {} at station {} ({}).\n\
         # It holds the device's broker password: keep it mode 0600.\n{body}",
        resp.device_id, resp.station_id, resp.site
    ))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("while creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("while creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("while writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("while writing {}", path.display()))?;
    Ok(())
}

fn client(server_ca: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("metcon-edge/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = server_ca {
        let pem = std::fs::read(ca).with_context(|| format!("while reading {}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
        b = b.add_root_certificate(cert);
    }
    b.build().context("while preparing the HTTP client")
}

/// Enrolls this box; returns what the cloud answered (the password is in it: do not print).
pub async fn enroll(opts: &EnrollOptions) -> anyhow::Result<EnrollResponse> {
    if opts.config.exists() && !opts.force {
        bail!(
            "{} exists; this box looks enrolled already (pass --force to enroll again)",
            opts.config.display()
        );
    }
    let server = opts.server.trim_end_matches('/');
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        bail!("--server must be an http:// or https:// URL (got {server:?})");
    }
    let key_dir = opts.data_dir.join("keys");
    let key = tokio::task::spawn_blocking(move || keystore::load_or_create(&key_dir))
        .await?
        .context("while creating the device key")?;
    let request = EnrollRequest {
        code: opts.code.trim().to_string(),
        public_key: PublicKeyHex(key.verifying().to_bytes()),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty()),
    };
    let url = format!("{server}/api/enroll");
    let res = client(opts.server_ca.as_deref())?
        .post(&url)
        .json(&request)
        .send()
        .await
        .with_context(|| format!("while contacting {url}"))?;
    let status = res.status();
    let body = res.bytes().await.context("while reading the answer")?;
    if !status.is_success() {
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        bail!("enrollment refused ({status}): {detail}");
    }
    let resp: EnrollResponse =
        serde_json::from_slice(&body).context("the server's answer is not an enrollment")?;
    let ca_file = match &resp.broker.ca_pem {
        Some(pem) => {
            let p = opts.data_dir.join("broker-ca.pem");
            std::fs::create_dir_all(&opts.data_dir)
                .with_context(|| format!("while creating {}", opts.data_dir.display()))?;
            std::fs::write(&p, pem).with_context(|| format!("while writing {}", p.display()))?;
            Some(p)
        }
        None if resp.broker.tls => bail!(
            "the broker uses TLS but the server sent no CA; ask the admin to configure broker.ca_file"
        ),
        None => None,
    };
    write_private(&opts.config, &render(&resp, &opts.data_dir, ca_file)?)?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use metcon_shared::device::{BrokerEndpoint, ScaleSettings};
    use metcon_shared::topic::DeviceId;

    #[test]
    fn the_written_configuration_is_one_the_agent_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let resp = EnrollResponse {
            device_id: DeviceId::parse("scale-07").expect("id"),
            site: "Plant A".into(),
            station_id: "receiving".into(),
            broker: BrokerEndpoint {
                host: "broker.plant".into(),
                port: 8883,
                tls: true,
                ca_pem: None,
            },
            username: "scale-07".into(),
            password: "s3cret \"quoted\"".into(),
            scale: serde_json::from_str::<ScaleSettings>(
                r#"{"protocol":"sbi","tcp":"10.0.0.5:4001","parity":"odd","unit":"kg"}"#,
            )
            .expect("scale"),
            camera: CameraSettings::Http {
                url: "http://cam/snap.jpg".into(),
            },
            camera_region: None,
        };
        let path = dir.path().join("edge.toml");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").expect("ca");
        write_private(&path, &render(&resp, dir.path(), Some(ca)).expect("render")).expect("write");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("meta").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let cfg = crate::config::Config::load(&path).expect("the agent reads it");
        assert_eq!(cfg.device.as_str(), "scale-07");
        assert_eq!(cfg.mqtt.port, 8883);
        assert_eq!(
            cfg.mqtt.credentials,
            Some(("scale-07".into(), "s3cret \"quoted\"".into()))
        );
        assert!(cfg.mqtt.tls.is_some());
    }
}
