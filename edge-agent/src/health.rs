//! What the running agent knows about itself, for the retained status message and for
//! `metcon-edge status` (which reads the `status.json` the agent keeps in its data dir).

use std::path::Path;

use metcon_shared::topic::{DeviceStatus, Presence};
use serde::{Deserialize, Serialize};

/// The agent's state, written to `status.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub device: String,
    pub mqtt_connected: bool,
    pub scale_connected: bool,
    pub protocol: String,
    pub outbox_depth: u64,
    pub outbox_full: bool,
    pub last_seq: Option<u64>,
    /// Last captured reading, as text (`148.30 g`).
    pub last_reading: Option<String>,
    /// Last weight seen on the scale, as text.
    pub scale_weight: Option<String>,
    /// The `request_id` of the last capture command that was fulfilled.
    #[serde(default)]
    pub last_capture_request: Option<String>,
    /// RFC 3339 time this file was written.
    pub updated: String,
}

impl Health {
    pub fn to_status(&self) -> DeviceStatus {
        DeviceStatus {
            presence: Presence::Online,
            outbox_depth: self.outbox_depth,
            outbox_full: self.outbox_full,
            last_seq: self.last_seq,
            scale_connected: self.scale_connected,
            agent_version: None,
            device_time: None,
            last_capture_request: self.last_capture_request.clone(),
        }
    }

    /// Writes `status.json` atomically (no fsync: it is advisory).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join("status.json.tmp");
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, dir.join("status.json"))
    }

    pub fn read(dir: &Path) -> std::io::Result<Health> {
        let bytes = std::fs::read(dir.join("status.json"))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}
