//! The demo's weighing station: a simulated scale (`metcon-scale-sim`, MT-SICS on a pty) and
//! a real `metcon-edge` enrolled with a one-time code, publishing signed readings to the
//! embedded broker, exactly as a plant's station would.
//!
//! Started by `metcon-cloud demo` when the two binaries sit next to it (they do after
//! `cargo build --release --workspace`). The agent's keys, outbox and configuration live in
//! `{data_dir}/demo-edge`; the simulator's control port takes `set 1000.2`, `print`, `tare`…

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use metcon_shared::calibration::{CalibrationKind, CalibrationOutcome, CalibrationRecord};
use metcon_shared::device::{CameraSettings, ScaleSettings};
use metcon_shared::topic::{DeviceConfig, DeviceId};
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::store::devices::{Device, DeviceState, EnrollmentCode};
use crate::store::Store;

pub const DEVICE_ID: &str = "demo-scale";

/// The running simulator and agent; both stop when this is dropped.
#[derive(Debug)]
pub struct DemoStation {
    pub control: String,
    _sim: Child,
    _agent: Child,
}

fn sibling(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join(name);
    p.exists().then_some(p)
}

async fn start_sim(bin: &Path) -> Result<(Child, String, String)> {
    let mut child = Command::new(bin)
        .args([
            "--protocol",
            "mt-sics",
            "--capacity",
            "5000",
            "--settle-ms",
            "600",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("while starting metcon-scale-sim")?;
    let out = child.stdout.take().context("simulator stdout")?;
    let mut lines = BufReader::new(out).lines();
    let (mut pty, mut control) = (None, None);
    while pty.is_none() || control.is_none() {
        let Some(line) = lines.next_line().await? else {
            bail!("the simulator exited before it said where it listens");
        };
        if let Some(p) = line.strip_prefix("PTY ") {
            pty = Some(p.trim().to_string());
        }
        if let Some(c) = line.strip_prefix("CONTROL ") {
            control = Some(c.trim().to_string());
        }
    }
    // keep draining its stdout so it never blocks
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, pty.unwrap_or_default(), control.unwrap_or_default()))
}

/// Registers the demo scale (calibrated, pending) and returns a fresh enrollment code.
async fn register(store: &dyn Store, pty: &str) -> Result<String> {
    let now = OffsetDateTime::now_utc();
    let id = DeviceId::parse(DEVICE_ID).context("device id")?;
    let device = Device {
        id: id.clone(),
        name: "Demo scale (simulated MT-SICS)".into(),
        site: "Demo refinery".into(),
        station_id: "receiving".into(),
        scale: ScaleSettings {
            protocol: "mt-sics".into(),
            port: Some(pty.to_string()),
            tcp: None,
            baud: 9600,
            data_bits: 8,
            parity: Default::default(),
            stop_bits: 1,
            unit: metcon_shared::mass::MassUnit::G,
            resolution: Some(rust_decimal::Decimal::new(1, 2)),
        },
        camera: CameraSettings::None,
        camera_region: None,
        config: DeviceConfig::default(),
        state: DeviceState::Pending,
        broker_secret_hash: None,
        hostname: None,
        agent_version: None,
        created_at: now,
        created_by: "system".into(),
        enrolled_at: None,
        revoked_at: None,
        revoked_reason: None,
        updated_at: now,
    };
    store.create_device(&device, &[]).await?;
    store
        .add_calibration(
            &CalibrationRecord {
                id: uuid::Uuid::new_v4().to_string(),
                device_id: DEVICE_ID.into(),
                kind: CalibrationKind::Calibration,
                outcome: CalibrationOutcome::Pass,
                performed_at: now,
                next_due: (now + time::Duration::days(365)).date(),
                scale_serial: None,
                reference: "demo: simulated scale".into(),
                performed_by: "METCON demo".into(),
                notes: None,
                recorded_by: "system".into(),
                recorded_at: now,
            },
            &[],
        )
        .await?;
    let code = crate::http::devices::new_code();
    store
        .create_enrollment_code(
            &EnrollmentCode {
                code_hash: crate::http::devices::code_hash(&code),
                device_id: DEVICE_ID.into(),
                created_by: "system".into(),
                created_at: now,
                expires_at: now + time::Duration::hours(1),
            },
            &[],
        )
        .await?;
    Ok(code)
}

/// Points an enrolled demo agent's configuration at this run's pty.
fn repoint(config: &Path, pty: &str) -> Result<()> {
    let text = std::fs::read_to_string(config)?;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("port = \"") {
                format!("port = \"{pty}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(config, out.join("\n") + "\n")?;
    Ok(())
}

/// Starts the station; `Ok(None)` (with a hint printed) when the binaries are not built.
pub async fn start(
    store: Arc<dyn Store>,
    data_dir: &Path,
    base_url: &str,
) -> Result<Option<DemoStation>> {
    let (Some(sim_bin), Some(edge_bin)) = (sibling("metcon-scale-sim"), sibling("metcon-edge"))
    else {
        println!("(no simulated scale: build metcon-scale-sim and metcon-edge next to metcon-cloud, e.g. `cargo build --release --workspace`)");
        return Ok(None);
    };
    let (sim, pty, control) = start_sim(&sim_bin).await?;
    let dir = data_dir.join("demo-edge");
    let config = dir.join("edge.toml");
    match store.device(DEVICE_ID).await? {
        None => {
            let code = register(store.as_ref(), &pty).await?;
            let out = Command::new(&edge_bin)
                .args(["enroll", "--server", base_url, "--code", &code, "--force"])
                .arg("--config")
                .arg(&config)
                .arg("--data-dir")
                .arg(dir.join("data"))
                .output()
                .await
                .context("while enrolling the demo agent")?;
            if !out.status.success() {
                bail!(
                    "the demo agent did not enroll: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Some(d) if d.state == DeviceState::Active && config.exists() => repoint(&config, &pty)?,
        Some(_) => {
            println!("(no simulated scale: device {DEVICE_ID} exists but its agent folder {} is gone; delete the data folder to start over)", dir.display());
            return Ok(None);
        }
    }
    let log =
        std::fs::File::create(dir.join("agent.log")).context("while creating the agent log")?;
    let agent = Command::new(&edge_bin)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("while starting the demo agent")?;
    Ok(Some(DemoStation {
        control,
        _sim: sim,
        _agent: agent,
    }))
}
