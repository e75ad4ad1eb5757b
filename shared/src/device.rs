//! Edge devices as the cloud registers them and as enrollment hands them over.
//!
//! An admin registers a device (the box beside one scale) with its station, scale settings and
//! camera settings; the cloud issues a one-time enrollment code. `metcon-edge enroll` generates
//! the key pair on the device and sends an [`EnrollRequest`] with the public key; the cloud
//! answers with an [`EnrollResponse`]: the device id, where the broker is, the device's own
//! broker credentials and the settings to write into the agent's configuration. These types
//! are the wire contract between the two, so both sides parse the same thing.

use serde::{Deserialize, Serialize};

use crate::mass::MassUnit;
use crate::reading::PublicKeyHex;
use crate::topic::DeviceId;

/// The scale protocols the agent speaks (`auto` probes for one of them).
pub const SCALE_PROTOCOLS: [&str; 7] = [
    "mt-sics",
    "sbi",
    "a-and-d",
    "ohaus",
    "toledo",
    "print-line",
    "auto",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

fn d_baud() -> u32 {
    9600
}
fn d_data_bits() -> u8 {
    8
}
fn d_stop_bits() -> u8 {
    1
}
fn d_unit() -> MassUnit {
    MassUnit::G
}

/// How the agent reaches its scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSettings {
    /// One of [`SCALE_PROTOCOLS`].
    pub protocol: String,
    /// Serial device, e.g. `/dev/metcon-scale` (see the udev rule in `hardware/README.md`).
    #[serde(default)]
    pub port: Option<String>,
    /// A serial-to-LAN converter, `host:port`, instead of `port`.
    #[serde(default)]
    pub tcp: Option<String>,
    #[serde(default = "d_baud")]
    pub baud: u32,
    #[serde(default = "d_data_bits")]
    pub data_bits: u8,
    #[serde(default)]
    pub parity: Parity,
    #[serde(default = "d_stop_bits")]
    pub stop_bits: u8,
    /// The unit assumed when the protocol prints none (SBI while the load moves).
    #[serde(default = "d_unit")]
    pub unit: MassUnit,
    /// The scale's display step in `unit` (e.g. `0.01`), for the OCR cross-check.
    #[serde(default)]
    pub resolution: Option<rust_decimal::Decimal>,
}

impl ScaleSettings {
    /// Every problem, each with the field it concerns.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut p = |f: &str, m: String| out.push((format!("scale.{f}"), m));
        if !SCALE_PROTOCOLS.contains(&self.protocol.as_str()) {
            p(
                "protocol",
                format!(
                    "unknown protocol {:?}; use one of {}",
                    self.protocol,
                    SCALE_PROTOCOLS.join(", ")
                ),
            );
        }
        match (&self.port, &self.tcp) {
            (Some(_), Some(_)) => p("port", "give either a serial port or tcp, not both".into()),
            (None, None) => p("port", "give a serial port or a tcp address".into()),
            (Some(port), None) if port.trim().is_empty() || port.len() > 256 => {
                p("port", "the serial port path is empty or too long".into())
            }
            (None, Some(addr)) if !valid_host_port(addr) => {
                p("tcp", format!("{addr:?} is not host:port"))
            }
            _ => {}
        }
        if !(300..=921_600).contains(&self.baud) {
            p(
                "baud",
                format!("{} is not a serial speed (300–921600)", self.baud),
            );
        }
        if !(5..=8).contains(&self.data_bits) {
            p("data_bits", "data bits are 5, 6, 7 or 8".into());
        }
        if !(1..=2).contains(&self.stop_bits) {
            p("stop_bits", "stop bits are 1 or 2".into());
        }
        if let Some(r) = self.resolution {
            if r <= rust_decimal::Decimal::ZERO {
                p(
                    "resolution",
                    "the display step must be greater than zero".into(),
                );
            }
        }
        out
    }
}

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && host.len() <= 253
                && !host.contains(char::is_whitespace)
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

/// Where a fixed camera's display region is, in pixels of its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Region {
    /// What is wrong with this region for frames of `frame` (width, height) pixels, if the
    /// frame size is known: it must have an area and lie wholly inside the frame.
    pub fn problems(&self, frame: Option<(u32, u32)>) -> Vec<String> {
        let mut out = Vec::new();
        if self.w == 0 || self.h == 0 {
            out.push("the region needs a width and a height of at least 1 pixel".to_string());
        }
        if let Some((fw, fh)) = frame {
            let right = u64::from(self.x) + u64::from(self.w);
            let bottom = u64::from(self.y) + u64::from(self.h);
            if right > u64::from(fw) || bottom > u64::from(fh) {
                out.push(format!(
                    "the region ({}, {}) {}×{} reaches outside the {fw}×{fh} frame",
                    self.x, self.y, self.w, self.h
                ));
            }
        }
        out
    }
}

/// The URI scheme of an enrollment QR code.
pub const ENROLL_URI_SCHEME: &str = "metcon-enroll";

/// What an enrollment QR code holds: `metcon-enroll:?url=<server>&code=<code>`, the two
/// arguments of `metcon-edge enroll --server … --code …`, each percent-encoded (RFC 3986
/// unreserved characters stay as they are). An installer's phone or the box's own scanner
/// reads it instead of typing the code.
pub fn enrollment_uri(server: &str, code: &str) -> String {
    format!(
        "{ENROLL_URI_SCHEME}:?url={}&code={}",
        percent_encode(server),
        percent_encode(code)
    )
}

/// The (server, code) of an [`enrollment_uri`], or `None` if `uri` is not one.
pub fn parse_enrollment_uri(uri: &str) -> Option<(String, String)> {
    let query = uri.strip_prefix(ENROLL_URI_SCHEME)?.strip_prefix(":?")?;
    let (mut url, mut code) = (None, None);
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=')?;
        match k {
            "url" => url = Some(percent_decode(v)?),
            "code" => code = Some(percent_decode(v)?),
            _ => {}
        }
    }
    Some((url?, code?))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The camera that photographs the scale display.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum CameraSettings {
    #[default]
    None,
    /// A USB/CSI camera through V4L2, e.g. `/dev/video0`.
    V4l2 { device: String },
    /// An IP camera's snapshot URL.
    Http { url: String },
    /// A file or folder of images (setups without a camera, tests).
    File { path: String },
}

impl CameraSettings {
    pub fn problems(&self) -> Vec<(String, String)> {
        let bad = |f: &str, m: &str| vec![(format!("camera.{f}"), m.to_string())];
        match self {
            CameraSettings::None => vec![],
            CameraSettings::V4l2 { device } if device.trim().is_empty() => {
                bad("device", "give the video device, e.g. /dev/video0")
            }
            CameraSettings::Http { url }
                if !(url.starts_with("http://") || url.starts_with("https://")) =>
            {
                bad(
                    "url",
                    "the snapshot URL must start with http:// or https://",
                )
            }
            CameraSettings::File { path } if path.trim().is_empty() => {
                bad("path", "give a file or folder")
            }
            _ => vec![],
        }
    }
}

/// What the device sends to enroll. The private key never leaves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-time code the admin was given, e.g. `K7QF-3M9T-WX2D-HP4N`.
    pub code: String,
    pub public_key: PublicKeyHex,
    pub agent_version: String,
    #[serde(default)]
    pub hostname: Option<String>,
}

/// Where the device's broker is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// The CA that signed the broker's certificate, PEM, when it is a private CA.
    #[serde(default)]
    pub ca_pem: Option<String>,
}

/// The cloud's answer to a successful enrollment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub device_id: DeviceId,
    pub site: String,
    pub station_id: String,
    pub broker: BrokerEndpoint,
    /// The device's own broker login: username is the device id.
    pub username: String,
    pub password: String,
    pub scale: ScaleSettings,
    pub camera: CameraSettings,
    #[serde(default)]
    pub camera_region: Option<Region>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrollment_uri_carries_server_and_code_and_reads_back() {
        let u = enrollment_uri(
            "https://metcon.plant.example:8443/x?y",
            "K7QF-3M9T-WX2D-HP4N",
        );
        assert_eq!(
            u,
            "metcon-enroll:?url=https%3A%2F%2Fmetcon.plant.example%3A8443%2Fx%3Fy&code=K7QF-3M9T-WX2D-HP4N"
        );
        assert_eq!(
            parse_enrollment_uri(&u),
            Some((
                "https://metcon.plant.example:8443/x?y".to_string(),
                "K7QF-3M9T-WX2D-HP4N".to_string()
            ))
        );
        assert_eq!(parse_enrollment_uri("https://x?url=a&code=b"), None);
        assert_eq!(parse_enrollment_uri("metcon-enroll:?url=a"), None);
        assert_eq!(parse_enrollment_uri("metcon-enroll:?url=%zz&code=b"), None);
    }

    #[test]
    fn a_region_must_have_an_area_and_fit_the_frame() {
        let r = Region {
            x: 10,
            y: 20,
            w: 100,
            h: 50,
        };
        assert!(r.problems(None).is_empty());
        assert!(r.problems(Some((110, 70))).is_empty());
        assert_eq!(r.problems(Some((109, 70))).len(), 1);
        assert_eq!(r.problems(Some((110, 69))).len(), 1);
        let flat = Region { w: 0, ..r };
        assert_eq!(flat.problems(None).len(), 1);
        let huge = Region {
            x: u32::MAX,
            y: 0,
            w: u32::MAX,
            h: 1,
        };
        assert_eq!(huge.problems(Some((640, 480))).len(), 1);
    }

    fn serial() -> ScaleSettings {
        serde_json::from_str(r#"{"protocol":"mt-sics","port":"/dev/ttyUSB0"}"#).expect("valid")
    }

    #[test]
    fn defaults_are_the_common_serial_settings() {
        let s = serial();
        assert_eq!((s.baud, s.data_bits, s.stop_bits), (9600, 8, 1));
        assert_eq!(s.parity, Parity::None);
        assert_eq!(s.unit, MassUnit::G);
        assert!(s.problems().is_empty());
    }

    #[test]
    fn every_problem_is_named() {
        let s = ScaleSettings {
            protocol: "modbus".into(),
            port: None,
            tcp: Some("nohost".into()),
            baud: 12,
            data_bits: 9,
            stop_bits: 3,
            resolution: Some(rust_decimal::Decimal::ZERO),
            ..serial()
        };
        let fields: Vec<String> = s.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "scale.protocol",
                "scale.tcp",
                "scale.baud",
                "scale.data_bits",
                "scale.stop_bits",
                "scale.resolution"
            ]
        );
        let both = ScaleSettings {
            tcp: Some("10.0.0.5:4001".into()),
            ..serial()
        };
        assert_eq!(both.problems().len(), 1);
        let tcp = ScaleSettings {
            port: None,
            tcp: Some("10.0.0.5:4001".into()),
            ..serial()
        };
        assert!(tcp.problems().is_empty());
    }

    #[test]
    fn camera_settings_have_a_tagged_json_form() {
        let c: CameraSettings =
            serde_json::from_str(r#"{"kind":"http","url":"http://cam/snap.jpg"}"#).expect("ok");
        assert!(c.problems().is_empty());
        let c: CameraSettings =
            serde_json::from_str(r#"{"kind":"http","url":"ftp://x"}"#).expect("parses");
        assert_eq!(c.problems().len(), 1);
        assert!(serde_json::from_str::<CameraSettings>(r#"{"kind":"laser"}"#).is_err());
        assert_eq!(CameraSettings::default(), CameraSettings::None);
    }
}
