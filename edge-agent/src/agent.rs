//! The running agent: scale → stability → capture → frame → sign → outbox → MQTT.
//!
//! [`run`] loads the key and the outbox, finds the protocol (probing when configured
//! `auto`), starts the scale driver and the publisher, and then owns the capture decision:
//! a capture command from the cloud arms a capture that the next stable reading fulfils
//! (stable = the scale's flag and the software filter); a Print key press (print-line,
//! Toledo print request) captures at once; `capture.auto_interval_ms` captures every
//! stable reading at that rate. A capture takes a frame, signs the reading with the next
//! sequence number and stores it durably (on a blocking thread) before the publisher is
//! told. A full outbox refuses the capture and raises `outbox_full` in the status.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use metcon_shared::reading::{
    self, FrameDigest, KeyRotation, Measurement, PublicKeyHex, Reading, FORMAT_VERSION,
};
use metcon_shared::topic::{DeviceCommand, DeviceStatus, LiveWeight};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch, Notify};

use crate::camera::{self, FrameSource};
use crate::config::{CameraConfig, Config, ProtocolChoice};
use crate::health::Health;
use crate::keystore::{self, DeviceKey};
use crate::outbox::{Outbox, OutboxError};
use crate::publisher;
use crate::scale::driver::{self, DriverConfig, DriverEvent, Sample, ScaleCommand};
use crate::scale::stability::StabilityFilter;
use crate::scale::{probe, Protocol, Reply, Weighing};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn make_camera(cfg: &CameraConfig) -> anyhow::Result<Option<Box<dyn FrameSource>>> {
    Ok(match cfg {
        CameraConfig::None => None,
        CameraConfig::File(p) => Some(Box::new(camera::file::FileSource::new(p))),
        CameraConfig::Http(url) => Some(Box::new(camera::http::HttpSource::new(url)?)),
        #[cfg(feature = "v4l2")]
        CameraConfig::V4l2(device) => Some(Box::new(camera::v4l2::V4l2Source::new(device))),
        #[cfg(not(feature = "v4l2"))]
        CameraConfig::V4l2(_) => return Err(camera::CameraError::NoV4l2.into()),
    })
}

async fn find_protocol(cfg: &Config, shutdown: &mut watch::Receiver<bool>) -> Option<Protocol> {
    match cfg.scale.protocol {
        ProtocolChoice::Fixed(p) => Some(p),
        ProtocolChoice::Auto => loop {
            match probe::probe(&cfg.scale.link, Duration::from_millis(700)).await {
                Ok(Some(found)) => {
                    tracing::info!(protocol = %found.protocol, evidence = %found.evidence, "scale protocol detected");
                    return Some(found.protocol);
                }
                Ok(None) => tracing::warn!("no scale protocol recognised; probing again in 5 s"),
                Err(e) => tracing::warn!(error = %e, "cannot probe the scale; retrying in 5 s"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.changed() => return None,
            }
        },
    }
}

struct Capturer {
    cfg: Config,
    protocol: Protocol,
    /// Swapped by a key rotation; read and used only under the outbox lock, so every entry
    /// is signed by the key that was current when it took its sequence number.
    key: Arc<Mutex<Arc<DeviceKey>>>,
    outbox: Arc<Mutex<Outbox>>,
    appended: Arc<Notify>,
    camera: Option<Box<dyn FrameSource>>,
    filter: StabilityFilter,
    armed: bool,
    /// The `request_id` of the capture command being fulfilled.
    armed_request: Option<String>,
    /// The request id the capture in progress answers.
    fulfilling: Option<String>,
    next_auto: Option<Instant>,
    serial: Option<String>,
    health: Arc<Mutex<Health>>,
    live: watch::Sender<Option<LiveWeight>>,
}

impl Capturer {
    async fn on_sample(&mut self, s: Sample) {
        match s.reply {
            Reply::Weight(w) => {
                let stable = self.filter.push(s.at, &w);
                let _ = self.live.send(Some(LiveWeight {
                    net: w.net,
                    unit: w.unit,
                    stable,
                }));
                lock(&self.health).scale_weight = Some(format!("{} {}", w.net, w.unit));
                // auto capture keeps a schedule (due, due + every, …) so that the rate
                // holds even though samples arrive with jitter
                let auto_due =
                    self.cfg.auto_capture.is_some() && self.next_auto.is_none_or(|due| s.at >= due);
                if stable && (self.armed || auto_due) {
                    if let (true, Some(every)) = (auto_due, self.cfg.auto_capture) {
                        let next = self.next_auto.map_or(s.at, |due| due + every);
                        self.next_auto = Some(if next <= s.at { s.at + every } else { next });
                    }
                    self.armed = false;
                    self.note_request_fulfilled();
                    self.capture(
                        Measurement::Weight {
                            net: w.net,
                            gross: w.gross,
                            tare: w.tare,
                            unit: w.unit,
                            stable: true,
                        },
                        &s.raw,
                        s.time,
                    )
                    .await;
                }
            }
            Reply::Printed(w) => {
                let filtered = self.filter.push(s.at, &w);
                let stable = w.stable && (self.protocol == Protocol::PrintLine || filtered);
                self.armed = false;
                self.note_request_fulfilled();
                self.capture(weight(&w, stable), &s.raw, s.time).await;
            }
            Reply::Overload | Reply::Underload => {
                self.filter.reset();
                lock(&self.health).scale_weight = Some(
                    if s.reply == Reply::Overload {
                        "overload"
                    } else {
                        "underload"
                    }
                    .into(),
                );
            }
            Reply::Tared(_) | Reply::Zeroed => self.filter.reset(),
            Reply::Serial(serial) => {
                tracing::info!(%serial, "scale serial number");
                self.serial = Some(serial);
            }
        }
    }

    /// The capture about to happen answers the armed command: sign its id into the reading
    /// and echo it in the status.
    fn note_request_fulfilled(&mut self) {
        if let Some(r) = self.armed_request.take() {
            lock(&self.health).last_capture_request = Some(r.clone());
            self.fulfilling = Some(r);
        }
    }

    /// Rotates the device key: stage a new key, append its announcement signed with the old
    /// key as the next entry, then promote it (see `keystore`).
    async fn rotate_key(&mut self) {
        let outbox = self.outbox.clone();
        let key = self.key.clone();
        let dir = self.cfg.key_dir();
        let device = self.cfg.device.clone();
        let done = tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, String)> {
            let mut o = lock(&outbox);
            let seq = o.next_seq();
            let staged =
                keystore::stage_rotation(&dir, seq).context("while staging the new key")?;
            let current = lock(&key).clone();
            let announcement = KeyRotation {
                v: FORMAT_VERSION,
                device,
                seq,
                new_key: PublicKeyHex(staged.verifying().to_bytes()),
                device_time: OffsetDateTime::now_utc(),
            };
            let signed = reading::sign_rotation(&announcement, current.signing())
                .context("while signing the key rotation")?;
            if let Err(e) = o.append(seq, signed.as_bytes(), None) {
                // not durable: the old key stays
                let _ = keystore::recover_rotation(&dir, o.next_seq());
                return Err(e).context("while storing the key rotation");
            }
            let promoted = keystore::promote(&dir).context("while promoting the new key")?;
            let public = promoted.public_hex();
            *lock(&key) = Arc::new(promoted);
            Ok((seq, public))
        })
        .await;
        match done {
            Ok(Ok((seq, public))) => {
                self.appended.notify_one();
                lock(&self.health).last_seq = Some(seq);
                tracing::info!(seq, public_key = %public, "key rotation announced");
            }
            Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "key rotation failed"),
            Err(e) => tracing::error!(error = %e, "key rotation task failed"),
        }
    }

    async fn capture(&mut self, m: Measurement, raw: &str, time: OffsetDateTime) {
        let request = self.fulfilling.take();
        let frame = match self.camera.as_mut() {
            Some(cam) => match cam.grab().await {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, "no frame for this reading");
                    None
                }
            },
            None => None,
        };
        let digest = frame
            .as_ref()
            .map(|f| FrameDigest(Sha256::digest(f).into()));
        let outbox = self.outbox.clone();
        let key = self.key.clone();
        let device = self.cfg.device.clone();
        let serial = self.serial.clone();
        let raw = raw.to_string();
        let shown = match &m {
            Measurement::Weight { net, unit, .. } => format!("{net} {unit}"),
            other => format!("{other:?}"),
        };
        let stored = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let mut o = lock(&outbox);
            let key = lock(&key).clone();
            let seq = o.next_seq();
            let r = Reading {
                v: FORMAT_VERSION,
                device,
                seq,
                measurement: m,
                scale_serial: serial,
                raw_line: raw,
                device_time: time,
                frame_sha256: digest,
                capture_request: request,
            };
            let signed = reading::sign(&r, key.signing()).context("while signing")?;
            o.append(seq, signed.as_bytes(), frame.as_deref())?;
            Ok(seq)
        })
        .await;
        let mut h = lock(&self.health);
        match stored {
            Ok(Ok(seq)) => {
                self.appended.notify_one();
                h.last_seq = Some(seq);
                h.last_reading = Some(shown);
                h.outbox_full = false;
                tracing::info!(seq, "reading captured");
            }
            Ok(Err(e)) => {
                if matches!(
                    e.downcast_ref::<OutboxError>(),
                    Some(OutboxError::Full { .. })
                ) {
                    h.outbox_full = true;
                    tracing::error!(error = %e, "ALARM: outbox full, capture refused");
                } else {
                    tracing::error!(error = %e, "capture failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "capture task failed"),
        }
    }
}

fn weight(w: &Weighing, stable: bool) -> Measurement {
    Measurement::Weight {
        net: w.net,
        gross: w.gross,
        tare: w.tare,
        unit: w.unit,
        stable,
    }
}

/// Runs the agent until `shutdown` turns true.
pub async fn run(cfg: Config, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let (dir, limits) = (cfg.outbox_dir(), cfg.outbox);
    let outbox = tokio::task::spawn_blocking(move || Outbox::open(&dir, limits))
        .await?
        .context("while opening the outbox")?;
    let key_dir = cfg.key_dir();
    let next_seq = outbox.next_seq();
    let key = tokio::task::spawn_blocking(move || {
        keystore::recover_rotation(&key_dir, next_seq)?;
        keystore::load_or_create(&key_dir)
    })
    .await?
    .context("while loading the device key")?;
    tracing::info!(device = %cfg.device, public_key = %key.public_hex(), "device key ready");
    tracing::info!(
        depth = outbox.depth(),
        next_seq = outbox.next_seq(),
        "outbox open"
    );
    let health = Arc::new(Mutex::new(Health {
        device: cfg.device.to_string(),
        outbox_depth: outbox.depth(),
        last_seq: outbox.last_seq(),
        ..Health::default()
    }));
    let outbox = Arc::new(Mutex::new(outbox));
    let appended = Arc::new(Notify::new());
    let (live_tx, live_rx) = watch::channel(None);
    let (status_tx, status_rx) = watch::channel(lock(&health).to_status());
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<DeviceCommand>(16);
    let (conn_tx, conn_rx) = watch::channel(false);

    let mqtt_options = publisher::options(&cfg.device, &cfg.mqtt)
        .context("while preparing the broker connection")?;
    let publisher = tokio::spawn(publisher::run(
        cfg.device.clone(),
        cfg.mqtt.clone(),
        mqtt_options,
        publisher::Channels {
            outbox: outbox.clone(),
            appended: appended.clone(),
            live: live_rx,
            status: status_rx,
            commands: cmd_tx,
            connected: conn_tx,
            shutdown: shutdown.clone(),
        },
    ));
    let reporter = tokio::spawn(report(
        cfg.data_dir.clone(),
        health.clone(),
        outbox.clone(),
        conn_rx,
        status_tx,
        shutdown.clone(),
    ));

    let Some(protocol) = find_protocol(&cfg, &mut shutdown).await else {
        return Ok(());
    };
    lock(&health).protocol = protocol.to_string();
    let (ev_tx, mut ev_rx) = mpsc::channel(256);
    let (scmd_tx, scmd_rx) = mpsc::channel(8);
    let driver = tokio::spawn(driver::run(
        DriverConfig {
            protocol,
            link: cfg.scale.link.clone(),
            poll: cfg.scale.poll,
            fallback_unit: cfg.scale.unit,
            silence: cfg.scale.silence,
        },
        ev_tx,
        scmd_rx,
        shutdown.clone(),
    ));
    let mut cap = Capturer {
        protocol,
        key: Arc::new(Mutex::new(Arc::new(key))),
        outbox,
        appended,
        camera: make_camera(&cfg.camera)?,
        filter: StabilityFilter::new(cfg.scale.stable_count, cfg.scale.stable_window),
        armed: false,
        armed_request: None,
        fulfilling: None,
        next_auto: None,
        serial: None,
        health: health.clone(),
        live: live_tx,
        cfg,
    };
    loop {
        tokio::select! {
            ev = ev_rx.recv() => match ev {
                Some(DriverEvent::Sample(s)) => cap.on_sample(s).await,
                Some(DriverEvent::Connected(up)) => {
                    lock(&health).scale_connected = up;
                    cap.filter.reset();
                }
                Some(DriverEvent::Error(_)) => {}
                None => break,
            },
            cmd = cmd_rx.recv() => match cmd {
                Some(DeviceCommand::Capture { request_id }) => {
                    tracing::info!(?request_id, "capture armed");
                    cap.armed = true;
                    cap.armed_request = request_id;
                }
                Some(DeviceCommand::RotateKey) => cap.rotate_key().await,
                Some(DeviceCommand::Tare) => { let _ = scmd_tx.try_send(ScaleCommand::Tare); }
                Some(DeviceCommand::Zero) => { let _ = scmd_tx.try_send(ScaleCommand::Zero); }
                None => {}
            },
            _ = shutdown.changed() => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let _ = driver.await;
        let _ = publisher.await;
        let _ = reporter.await;
    })
    .await;
    Ok(())
}

/// Keeps the status message and `status.json` current (once a second).
async fn report(
    data_dir: std::path::PathBuf,
    health: Arc<Mutex<Health>>,
    outbox: Arc<Mutex<Outbox>>,
    connected: watch::Receiver<bool>,
    status: watch::Sender<DeviceStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let depth = lock(&outbox).depth();
        let snapshot = {
            let mut h = lock(&health);
            h.outbox_depth = depth;
            h.mqtt_connected = *connected.borrow();
            h.updated = OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default();
            h.clone()
        };
        status.send_if_modified(|s| {
            let new = snapshot.to_status();
            let changed = *s != new;
            *s = new;
            changed
        });
        let dir = data_dir.clone();
        let _ = tokio::task::spawn_blocking(move || snapshot.write(&dir)).await;
    }
}
