//! The MQTT topic scheme, in one place, and the small JSON messages that travel on it.
//!
//! Every topic lives under one versioned prefix, per device:
//! `metcon/v1/dev/{device}/{channel}` with channel one of `reading` (signed readings, QoS 1),
//! `live` (current weight for display, QoS 0, never used for decisions), `photo` (frame bytes,
//! QoS 1), `status` (retained; the broker will says `offline`), `cmd` (cloud → device:
//! capture, tare, zero) and `config` (retained, cloud → device). Edge agent, cloud ingest and
//! the broker ACL all format and parse topics here, so a change of scheme is one edit.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::mass::MassUnit;

/// The versioned prefix all device topics live under.
pub const PREFIX: &str = "metcon/v1/dev";

/// Where cloud replicas tell each other about changes (batches moved, devices revoked), so
/// that every replica's live views and caches follow. Never used by devices.
pub const CLOUD_CHANGES: &str = "metcon/v1/cloud/changes";

/// Longest device id accepted (it is a topic segment and a COSE key id).
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// A device id: 1–64 characters of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit.
///
/// The restricted alphabet keeps it safe as an MQTT topic segment (no `/`, `+`, `#`), a file
/// name and an ACL pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

/// Why a string is not a device id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    #[error("a device id cannot be empty")]
    Empty,
    #[error("a device id has at most {MAX_DEVICE_ID_LEN} characters (got {0})")]
    TooLong(usize),
    #[error(
        "a device id uses only a-z, 0-9, '-' and '_' and starts with a letter or digit (got {0:?})"
    )]
    BadCharacter(String),
}

impl DeviceId {
    pub fn parse(s: &str) -> Result<DeviceId, DeviceIdError> {
        if s.is_empty() {
            return Err(DeviceIdError::Empty);
        }
        if s.len() > MAX_DEVICE_ID_LEN {
            return Err(DeviceIdError::TooLong(s.len()));
        }
        let ok_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        let first_ok = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !first_ok || !s.chars().all(ok_char) {
            return Err(DeviceIdError::BadCharacter(s.to_string()));
        }
        Ok(DeviceId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceId {
    type Err = DeviceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceId::parse(s)
    }
}

impl TryFrom<String> for DeviceId {
    type Error = DeviceIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DeviceId::parse(&s)
    }
}

impl From<DeviceId> for String {
    fn from(d: DeviceId) -> String {
        d.0
    }
}

/// What a device topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Signed readings (COSE_Sign1 bytes), QoS 1.
    Reading,
    /// Current weight for display ([`LiveWeight`] JSON), QoS 0.
    Live,
    /// Frame bytes whose SHA-256 a reading carries, QoS 1.
    Photo,
    /// [`DeviceStatus`] JSON, retained; the broker will publishes `offline`.
    Status,
    /// [`DeviceCommand`] JSON from the cloud.
    Cmd,
    /// Device configuration from the cloud, retained.
    Config,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Reading,
        Channel::Live,
        Channel::Photo,
        Channel::Status,
        Channel::Cmd,
        Channel::Config,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Reading => "reading",
            Channel::Live => "live",
            Channel::Photo => "photo",
            Channel::Status => "status",
            Channel::Cmd => "cmd",
            Channel::Config => "config",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed device topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    pub device: DeviceId,
    pub channel: Channel,
}

/// Why a string is not a METCON device topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic {0:?} is not under {PREFIX}/")]
    WrongPrefix(String),
    #[error("topic {0:?} does not have the form {PREFIX}/{{device}}/{{channel}}")]
    Shape(String),
    #[error("unknown channel {0:?}")]
    UnknownChannel(String),
    #[error(transparent)]
    Device(#[from] DeviceIdError),
}

impl Topic {
    pub fn new(device: DeviceId, channel: Channel) -> Topic {
        Topic { device, channel }
    }

    pub fn parse(s: &str) -> Result<Topic, TopicError> {
        let rest = s
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| TopicError::WrongPrefix(s.to_string()))?;
        let mut parts = rest.split('/');
        let (Some(device), Some(channel), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TopicError::Shape(s.to_string()));
        };
        let device = DeviceId::parse(device)?;
        let channel = Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == channel)
            .ok_or_else(|| TopicError::UnknownChannel(channel.to_string()))?;
        Ok(Topic { device, channel })
    }

    /// The topic filter matching `channel` of every device (`metcon/v1/dev/+/reading`), for
    /// the cloud's ingest subscription and broker ACLs.
    pub fn all_devices_filter(channel: Channel) -> String {
        format!("{PREFIX}/+/{channel}")
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}/{}/{}", self.device, self.channel)
    }
}

impl FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topic::parse(s)
    }
}

/// A command from the cloud on the `cmd` channel, JSON: `{"cmd":"capture","request_id":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum DeviceCommand {
    /// Sign and send the next stable reading. `request_id` is echoed in the status so the
    /// kiosk can tell its capture happened.
    Capture {
        #[serde(default)]
        request_id: Option<String>,
    },
    /// Tare the scale.
    Tare,
    /// Zero the scale.
    Zero,
    /// Generate a new device key and announce it, signed with the current key, as the next
    /// entry of the reading stream (see `reading::KeyRotation`).
    RotateKey,
}

/// Whether the device is connected, on the retained `status` channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Offline,
}

/// The retained status message. The broker will is `{"presence":"offline"}`.
///
/// The agent republishes it when anything changes and at least every
/// [`STATUS_HEARTBEAT_SECS`], so the cloud can tell the device's clock skew from
/// `device_time` and the time the message arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub presence: Presence,
    /// Readings on disk waiting for the broker's acknowledgement.
    #[serde(default)]
    pub outbox_depth: u64,
    /// True when the outbox is full and new captures are refused.
    #[serde(default)]
    pub outbox_full: bool,
    /// Sequence number of the last captured reading.
    #[serde(default)]
    pub last_seq: Option<u64>,
    /// Whether the scale answers.
    #[serde(default)]
    pub scale_connected: bool,
    /// `metcon-edge` version, e.g. `0.1.0`.
    #[serde(default)]
    pub agent_version: Option<String>,
    /// The device's clock when the status was published.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub device_time: Option<time::OffsetDateTime>,
    /// The `request_id` of the last capture command that was fulfilled.
    #[serde(default)]
    pub last_capture_request: Option<String>,
}

/// Longest interval between two status messages of a connected agent.
pub const STATUS_HEARTBEAT_SECS: u64 = 30;

impl DeviceStatus {
    pub fn offline() -> DeviceStatus {
        DeviceStatus {
            presence: Presence::Offline,
            outbox_depth: 0,
            outbox_full: false,
            last_seq: None,
            scale_connected: false,
            agent_version: None,
            device_time: None,
            last_capture_request: None,
        }
    }
}

/// Configuration the cloud pushes on the retained `config` channel. Every field is optional:
/// what is absent keeps the value of the agent's own file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Live weight messages per second for the kiosk (0 = off, at most 50).
    #[serde(default)]
    pub live_rate_hz: Option<f64>,
}

impl DeviceConfig {
    /// Every problem with the values, for the admin who pushes them.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(r) = self.live_rate_hz {
            if !(0.0..=50.0).contains(&r) || r.is_nan() {
                out.push(format!("live_rate_hz must be between 0 and 50 (got {r})"));
            }
        }
        out
    }
}

/// The current weight for display on the `live` channel. Never used for decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveWeight {
    pub net: Decimal,
    pub unit: MassUnit,
    pub stable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(s: &str) -> DeviceId {
        DeviceId::parse(s).expect("valid test id")
    }

    #[test]
    fn topics_format_and_parse_back() {
        for channel in Channel::ALL {
            let t = Topic::new(dev("scale-01"), channel);
            let s = t.to_string();
            assert_eq!(s, format!("metcon/v1/dev/scale-01/{}", channel.as_str()));
            assert_eq!(Topic::parse(&s), Ok(t));
        }
    }

    #[test]
    fn bad_topics_are_refused_with_a_reason() {
        assert!(matches!(
            Topic::parse("metcon/v2/dev/a/reading"),
            Err(TopicError::WrongPrefix(_))
        ));
        assert!(matches!(
            Topic::parse("metcon/v1/dev/a/reading/x"),
            Err(TopicError::Shape(_))
        ));
        assert!(matches!(
            Topic::parse("metcon/v1/dev/a"),
            Err(TopicError::Shape(_))
        ));
        assert!(matches!(
            Topic::parse("metcon/v1/dev/a/weight"),
            Err(TopicError::UnknownChannel(_))
        ));
        assert!(matches!(
            Topic::parse("metcon/v1/dev/+/reading"),
            Err(TopicError::Device(_))
        ));
        assert!(matches!(
            Topic::parse("metcon/v1/devx/a/reading"),
            Err(TopicError::WrongPrefix(_))
        ));
    }

    #[test]
    fn device_ids_are_topic_safe() {
        assert!(DeviceId::parse("scale-01_b").is_ok());
        for bad in ["", "-a", "A", "a/b", "a+b", "a#", "a b", "é"] {
            assert!(DeviceId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            DeviceId::parse(&"a".repeat(65)),
            Err(DeviceIdError::TooLong(65))
        );
    }

    #[test]
    fn filter_covers_all_devices() {
        assert_eq!(
            Topic::all_devices_filter(Channel::Reading),
            "metcon/v1/dev/+/reading"
        );
    }

    #[test]
    fn commands_have_a_stable_json_form() {
        let c: DeviceCommand =
            serde_json::from_str(r#"{"cmd":"capture","request_id":"r1"}"#).expect("valid");
        assert_eq!(
            c,
            DeviceCommand::Capture {
                request_id: Some("r1".into())
            }
        );
        let t: DeviceCommand = serde_json::from_str(r#"{"cmd":"tare"}"#).expect("valid");
        assert_eq!(t, DeviceCommand::Tare);
        assert!(serde_json::from_str::<DeviceCommand>(r#"{"cmd":"explode"}"#).is_err());
        let s = serde_json::to_string(&DeviceStatus::offline()).expect("serialize");
        assert!(s.contains(r#""presence":"offline""#));
    }
}
