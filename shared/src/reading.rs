//! Signed scale readings: the payload a device measured and its COSE_Sign1 envelope.
//!
//! A [`Reading`] is what a scale said at one moment (net/gross/tare as exact decimals in a
//! [`MassUnit`], stable or not, or overload/underload), the raw protocol line it came from,
//! the device clock time, the SHA-256 of a camera frame if one was taken, and the device id
//! with a per-device sequence number. The edge agent serializes it as CBOR and signs it with
//! the device's Ed25519 key in a COSE_Sign1 envelope (RFC 9052, tagged, algorithm EdDSA, key
//! id = device id). The cloud calls [`key_id`] to find the device's registered key and then
//! [`verify`], which checks the signature before it decodes anything else.
//!
//! Pure: keys come in as arguments; no clock, no randomness, no I/O.

use std::fmt;

use coset::{
    iana, CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::mass::MassUnit;
use crate::topic::DeviceId;

/// The payload format version this module writes and accepts.
pub const FORMAT_VERSION: u8 = 1;
/// Largest envelope [`verify`] looks at; a reading is a few hundred bytes.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024;
/// Longest raw protocol line kept in a reading.
pub const MAX_RAW_LINE_BYTES: usize = 512;
/// Longest scale serial number kept in a reading.
pub const MAX_SERIAL_BYTES: usize = 64;
/// COSE content type of the payload.
pub const CONTENT_TYPE: &str = "application/vnd.metcon.reading+cbor";
/// COSE content type of a key rotation announcement (see [`KeyRotation`]).
pub const ROTATION_CONTENT_TYPE: &str = "application/vnd.metcon.key-rotation+cbor";

/// What the scale reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measurement {
    /// A weight. `net` may be negative (after a tare); `gross` and `tare` are present when
    /// the protocol reports them.
    Weight {
        net: Decimal,
        gross: Option<Decimal>,
        tare: Option<Decimal>,
        unit: MassUnit,
        /// The scale's own stability flag, confirmed by the agent's software filter.
        stable: bool,
    },
    /// The load is above the scale's capacity.
    Overload,
    /// The load is below the scale's zero range.
    Underload,
}

/// SHA-256 of the camera frame taken with a reading; hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameDigest(pub [u8; 32]);

impl fmt::Debug for FrameDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrameDigest({})", hex::encode(self.0))
    }
}

impl fmt::Display for FrameDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for FrameDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for FrameDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out)
            .map_err(|e| serde::de::Error::custom(format!("frame digest: {e}")))?;
        Ok(FrameDigest(out))
    }
}

/// One reading as measured by a device. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// Payload format version, [`FORMAT_VERSION`].
    pub v: u8,
    pub device: DeviceId,
    /// Per-device sequence number: strictly increasing, never reused.
    pub seq: u64,
    pub measurement: Measurement,
    /// The scale's serial number, when the protocol can ask for it.
    pub scale_serial: Option<String>,
    /// The protocol line (or frame, escaped) the measurement was parsed from.
    pub raw_line: String,
    /// The device's clock when the reading was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub device_time: OffsetDateTime,
    /// SHA-256 of the camera frame taken with this reading.
    pub frame_sha256: Option<FrameDigest>,
    /// The `request_id` of the cloud's capture command this reading answers, if any: it
    /// binds the reading to the step that asked for it.
    #[serde(default)]
    pub capture_request: Option<String>,
}

/// Why a reading cannot be signed, or an envelope is not a valid signed reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadingError {
    #[error("envelope is {0} bytes; the limit is {MAX_ENVELOPE_BYTES}")]
    TooLarge(usize),
    #[error("not a tagged COSE_Sign1 envelope: {0}")]
    Envelope(String),
    #[error("envelope algorithm must be EdDSA")]
    Algorithm,
    #[error("envelope has no key id")]
    MissingKeyId,
    #[error("envelope key id is not a device id: {0}")]
    BadKeyId(String),
    #[error("envelope has no payload")]
    MissingPayload,
    #[error("signature does not verify with the device key")]
    BadSignature,
    #[error("payload is not a reading: {0}")]
    Payload(String),
    #[error("payload format version {0} is not supported (expected {FORMAT_VERSION})")]
    Version(u8),
    #[error("envelope key id {kid} does not match the payload's device {device}")]
    DeviceMismatch { kid: String, device: String },
    #[error("raw line is {0} bytes; the limit is {MAX_RAW_LINE_BYTES}")]
    RawLineTooLong(usize),
    #[error("scale serial is {0} bytes; the limit is {MAX_SERIAL_BYTES}")]
    SerialTooLong(usize),
    #[error("not a usable Ed25519 public key: {0}")]
    BadPublicKey(String),
}

impl Reading {
    /// Checks the limits a reading must respect on the wire.
    pub fn check(&self) -> Result<(), ReadingError> {
        if self.v != FORMAT_VERSION {
            return Err(ReadingError::Version(self.v));
        }
        if self.raw_line.len() > MAX_RAW_LINE_BYTES {
            return Err(ReadingError::RawLineTooLong(self.raw_line.len()));
        }
        if let Some(s) = &self.scale_serial {
            if s.len() > MAX_SERIAL_BYTES {
                return Err(ReadingError::SerialTooLong(s.len()));
            }
        }
        if let Some(r) = &self.capture_request {
            if r.len() > MAX_SERIAL_BYTES {
                return Err(ReadingError::Payload(format!(
                    "capture request id is {} bytes; the limit is {MAX_SERIAL_BYTES}",
                    r.len()
                )));
            }
        }
        Ok(())
    }

    /// The payload bytes that get signed (CBOR).
    pub fn to_cbor(&self) -> Result<Vec<u8>, ReadingError> {
        let mut out = Vec::with_capacity(256);
        ciborium::into_writer(self, &mut out).map_err(|e| ReadingError::Payload(e.to_string()))?;
        Ok(out)
    }

    fn from_cbor(bytes: &[u8]) -> Result<Reading, ReadingError> {
        let r: Reading =
            ciborium::from_reader(bytes).map_err(|e| ReadingError::Payload(e.to_string()))?;
        r.check()?;
        Ok(r)
    }
}

/// A COSE_Sign1 envelope holding a signed [`Reading`], as published on the `reading` topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReading(Vec<u8>);

impl SignedReading {
    /// Wraps bytes read back from disk or the wire; nothing is checked until [`verify`].
    pub fn from_bytes(bytes: Vec<u8>) -> SignedReading {
        SignedReading(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Signs `reading` with the device key. The key id is the reading's device id.
pub fn sign(reading: &Reading, key: &SigningKey) -> Result<SignedReading, ReadingError> {
    reading.check()?;
    let payload = reading.to_cbor()?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(reading.device.as_str().as_bytes().to_vec())
        .content_type(CONTENT_TYPE.to_string())
        .build();
    let envelope = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |to_be_signed| {
            key.sign(to_be_signed).to_bytes().to_vec()
        })
        .build();
    let bytes = envelope
        .to_tagged_vec()
        .map_err(|e| ReadingError::Envelope(e.to_string()))?;
    Ok(SignedReading(bytes))
}

fn parse_envelope(bytes: &[u8]) -> Result<(CoseSign1, DeviceId), ReadingError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(ReadingError::TooLarge(bytes.len()));
    }
    let envelope = CoseSign1::from_tagged_slice(bytes)
        .or_else(|_| CoseSign1::from_slice(bytes))
        .map_err(|e| ReadingError::Envelope(e.to_string()))?;
    let header = &envelope.protected.header;
    if header.alg
        != Some(coset::RegisteredLabelWithPrivate::Assigned(
            iana::Algorithm::EdDSA,
        ))
    {
        return Err(ReadingError::Algorithm);
    }
    if header.key_id.is_empty() {
        return Err(ReadingError::MissingKeyId);
    }
    let kid = std::str::from_utf8(&header.key_id)
        .map_err(|_| ReadingError::BadKeyId(hex::encode(&header.key_id)))?;
    let device = DeviceId::parse(kid).map_err(|e| ReadingError::BadKeyId(e.to_string()))?;
    Ok((envelope, device))
}

fn content_kind(envelope: &CoseSign1) -> PayloadKind {
    match &envelope.protected.header.content_type {
        Some(coset::ContentType::Text(t)) if t == ROTATION_CONTENT_TYPE => PayloadKind::KeyRotation,
        _ => PayloadKind::Reading,
    }
}

/// The device id in the envelope's protected header, *unverified*: use it only to look up
/// the key to pass to [`verify`].
pub fn key_id(bytes: &[u8]) -> Result<DeviceId, ReadingError> {
    parse_envelope(bytes).map(|(_, d)| d)
}

/// Verifies the envelope with the device's key, then decodes and checks the reading.
pub fn verify(bytes: &[u8], key: &VerifyingKey) -> Result<Reading, ReadingError> {
    let (envelope, kid) = parse_envelope(bytes)?;
    if content_kind(&envelope) != PayloadKind::Reading {
        return Err(ReadingError::Payload(
            "a key rotation, not a reading".into(),
        ));
    }
    envelope.verify_signature(b"", |sig, data| {
        let sig = Signature::from_slice(sig).map_err(|_| ReadingError::BadSignature)?;
        key.verify_strict(data, &sig)
            .map_err(|_| ReadingError::BadSignature)
    })?;
    let payload = envelope
        .payload
        .as_deref()
        .ok_or(ReadingError::MissingPayload)?;
    let reading = Reading::from_cbor(payload)?;
    if reading.device != kid {
        return Err(ReadingError::DeviceMismatch {
            kid: kid.to_string(),
            device: reading.device.to_string(),
        });
    }
    Ok(reading)
}

/// Decodes the reading *without* checking the signature, for diagnostics (`metcon-edge
/// inspect` without a key). Never use the result for a decision.
pub fn decode_unverified(bytes: &[u8]) -> Result<Reading, ReadingError> {
    let (envelope, _) = parse_envelope(bytes)?;
    let payload = envelope
        .payload
        .as_deref()
        .ok_or(ReadingError::MissingPayload)?;
    Reading::from_cbor(payload)
}

/// What a signed entry of a device's stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    Reading,
    KeyRotation,
}

/// A device announcing its next key, signed with its current key.
///
/// It travels as an entry of the device's reading stream and takes a sequence number of its
/// own, so it is durable in the outbox and ordered with the readings: entries up to and
/// including `seq` are signed with the old key, entries after it with `new_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    /// Payload format version, [`FORMAT_VERSION`].
    pub v: u8,
    pub device: DeviceId,
    pub seq: u64,
    /// The new Ed25519 public key, hex on the wire.
    pub new_key: PublicKeyHex,
    #[serde(with = "time::serde::rfc3339")]
    pub device_time: OffsetDateTime,
}

/// An Ed25519 public key, 32 bytes, lowercase hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKeyHex(pub [u8; 32]);

impl PublicKeyHex {
    /// Parses 64 hex digits into a key that is a valid, non-weak Ed25519 point.
    pub fn parse(s: &str) -> Result<PublicKeyHex, ReadingError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out)
            .map_err(|e| ReadingError::BadPublicKey(format!("not 64 hex digits: {e}")))?;
        let k = PublicKeyHex(out);
        k.verifying_key()?;
        Ok(k)
    }

    pub fn verifying_key(&self) -> Result<VerifyingKey, ReadingError> {
        let vk = VerifyingKey::from_bytes(&self.0)
            .map_err(|_| ReadingError::BadPublicKey("not a point on the curve".into()))?;
        if vk.is_weak() {
            return Err(ReadingError::BadPublicKey(
                "a weak (small-order) key".into(),
            ));
        }
        Ok(vk)
    }
}

impl fmt::Debug for PublicKeyHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKeyHex({})", hex::encode(self.0))
    }
}

impl fmt::Display for PublicKeyHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for PublicKeyHex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for PublicKeyHex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PublicKeyHex::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Signs a key rotation with the device's *current* key.
pub fn sign_rotation(
    rotation: &KeyRotation,
    current: &SigningKey,
) -> Result<SignedReading, ReadingError> {
    if rotation.v != FORMAT_VERSION {
        return Err(ReadingError::Version(rotation.v));
    }
    let mut payload = Vec::with_capacity(128);
    ciborium::into_writer(rotation, &mut payload)
        .map_err(|e| ReadingError::Payload(e.to_string()))?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(rotation.device.as_str().as_bytes().to_vec())
        .content_type(ROTATION_CONTENT_TYPE.to_string())
        .build();
    let envelope = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |tbs| current.sign(tbs).to_bytes().to_vec())
        .build();
    envelope
        .to_tagged_vec()
        .map(SignedReading)
        .map_err(|e| ReadingError::Envelope(e.to_string()))
}

/// A verified entry of a device's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    Reading(Reading),
    KeyRotation(KeyRotation),
}

impl Signed {
    pub fn seq(&self) -> u64 {
        match self {
            Signed::Reading(r) => r.seq,
            Signed::KeyRotation(k) => k.seq,
        }
    }
}

/// A parsed, not yet verified envelope: what a verifier needs to check many signatures at
/// once (the cloud uses Ed25519 batch verification) before it opens the payloads.
#[derive(Debug, Clone)]
pub struct Envelope {
    device: DeviceId,
    kind: PayloadKind,
    to_be_signed: Vec<u8>,
    signature: Signature,
    payload: Vec<u8>,
}

impl Envelope {
    pub fn parse(bytes: &[u8]) -> Result<Envelope, ReadingError> {
        let (envelope, device) = parse_envelope(bytes)?;
        let kind = content_kind(&envelope);
        let signature =
            Signature::from_slice(&envelope.signature).map_err(|_| ReadingError::BadSignature)?;
        let to_be_signed = envelope.tbs_data(b"");
        let payload = envelope.payload.ok_or(ReadingError::MissingPayload)?;
        Ok(Envelope {
            device,
            kind,
            to_be_signed,
            signature,
            payload,
        })
    }

    /// The key id, *unverified*.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    pub fn kind(&self) -> PayloadKind {
        self.kind
    }

    /// The bytes the signature covers (COSE `Sig_structure`).
    pub fn to_be_signed(&self) -> &[u8] {
        &self.to_be_signed
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Checks the signature on its own (strict Ed25519).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), ReadingError> {
        key.verify_strict(&self.to_be_signed, &self.signature)
            .map_err(|_| ReadingError::BadSignature)
    }

    /// Decodes the payload. Call only after the signature was verified (alone or in a batch).
    pub fn open(&self) -> Result<Signed, ReadingError> {
        let (device, signed) = match self.kind {
            PayloadKind::Reading => {
                let r = Reading::from_cbor(&self.payload)?;
                (r.device.clone(), Signed::Reading(r))
            }
            PayloadKind::KeyRotation => {
                let k: KeyRotation = ciborium::from_reader(self.payload.as_slice())
                    .map_err(|e| ReadingError::Payload(e.to_string()))?;
                if k.v != FORMAT_VERSION {
                    return Err(ReadingError::Version(k.v));
                }
                (k.device.clone(), Signed::KeyRotation(k))
            }
        };
        if device != self.device {
            return Err(ReadingError::DeviceMismatch {
                kid: self.device.to_string(),
                device: device.to_string(),
            });
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn reading(seq: u64) -> Reading {
        Reading {
            v: FORMAT_VERSION,
            device: DeviceId::parse("scale-01").expect("valid id"),
            seq,
            measurement: Measurement::Weight {
                net: Decimal::from_str_exact("-148.30").expect("literal"),
                gross: Some(Decimal::from_str_exact("51.70").expect("literal")),
                tare: Some(Decimal::from_str_exact("200.00").expect("literal")),
                unit: MassUnit::G,
                stable: true,
            },
            scale_serial: Some("B123456789".into()),
            raw_line: "S S    -148.30 g".into(),
            device_time: datetime!(2026-11-25 05:30:00.123 UTC),
            frame_sha256: Some(FrameDigest([7; 32])),
            capture_request: Some("arm-1".into()),
        }
    }

    #[test]
    fn sign_verify_round_trip_keeps_every_field_exact() {
        let k = key(1);
        for r in [
            reading(1),
            Reading {
                measurement: Measurement::Overload,
                frame_sha256: None,
                scale_serial: None,
                ..reading(2)
            },
            Reading {
                measurement: Measurement::Underload,
                ..reading(u64::MAX)
            },
        ] {
            let signed = sign(&r, &k).expect("sign");
            let back = verify(signed.as_bytes(), &k.verifying_key()).expect("verify");
            assert_eq!(back, r);
            assert_eq!(key_id(signed.as_bytes()), Ok(r.device.clone()));
        }
        let r = verify(
            sign(&reading(1), &k).expect("sign").as_bytes(),
            &k.verifying_key(),
        )
        .expect("verify");
        let Measurement::Weight { net, .. } = r.measurement else {
            panic!("weight expected")
        };
        assert_eq!(net.to_string(), "-148.30", "decimal scale is kept");
    }

    #[test]
    fn wrong_key_is_rejected() {
        let signed = sign(&reading(1), &key(1)).expect("sign");
        assert_eq!(
            verify(signed.as_bytes(), &key(2).verifying_key()),
            Err(ReadingError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let k = key(1);
        let signed = sign(&reading(1), &k).expect("sign").into_bytes();
        // Change the weight inside the signed payload: "148.30" -> "148.39".
        let at = signed
            .windows(6)
            .position(|w| w == b"148.30")
            .expect("value in payload");
        let mut tampered = signed.clone();
        tampered[at + 5] = b'9';
        assert_eq!(
            verify(&tampered, &k.verifying_key()),
            Err(ReadingError::BadSignature)
        );
        // Flip any single byte: never accepted.
        for i in 0..signed.len() {
            let mut t = signed.clone();
            t[i] ^= 0x01;
            assert!(verify(&t, &k.verifying_key()).is_err(), "byte {i} flipped");
        }
    }

    #[test]
    fn key_id_must_match_payload_device() {
        // Sign a payload whose device differs from the kid, by hand.
        let k = key(1);
        let r = reading(1);
        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(b"scale-02".to_vec())
            .build();
        let bytes = CoseSign1Builder::new()
            .protected(protected)
            .payload(r.to_cbor().expect("cbor"))
            .create_signature(b"", |d| k.sign(d).to_bytes().to_vec())
            .build()
            .to_tagged_vec()
            .expect("encode");
        assert!(matches!(
            verify(&bytes, &k.verifying_key()),
            Err(ReadingError::DeviceMismatch { .. })
        ));
    }

    #[test]
    fn garbage_and_oversize_are_typed_errors() {
        let k = key(1).verifying_key();
        assert!(matches!(verify(b"", &k), Err(ReadingError::Envelope(_))));
        assert!(matches!(
            verify(b"\xff\x00garbage", &k),
            Err(ReadingError::Envelope(_))
        ));
        assert!(matches!(
            verify(&vec![0u8; MAX_ENVELOPE_BYTES + 1], &k),
            Err(ReadingError::TooLarge(_))
        ));
    }

    #[test]
    fn limits_are_checked_before_signing() {
        let r = Reading {
            raw_line: "x".repeat(MAX_RAW_LINE_BYTES + 1),
            ..reading(1)
        };
        assert!(matches!(
            sign(&r, &key(1)),
            Err(ReadingError::RawLineTooLong(_))
        ));
    }

    #[test]
    fn unverified_decode_is_available_for_diagnostics() {
        let signed = sign(&reading(9), &key(1)).expect("sign");
        assert_eq!(decode_unverified(signed.as_bytes()).map(|r| r.seq), Ok(9));
    }

    #[test]
    fn envelope_parts_verify_and_open_readings_and_rotations() {
        let old = key(1);
        let new = key(2);
        let r = reading(7);
        let env = Envelope::parse(sign(&r, &old).expect("sign").as_bytes()).expect("parse");
        assert_eq!(env.kind(), PayloadKind::Reading);
        assert_eq!(env.device().as_str(), "scale-01");
        env.verify(&old.verifying_key()).expect("verifies");
        assert_eq!(
            env.verify(&new.verifying_key()),
            Err(ReadingError::BadSignature)
        );
        assert_eq!(env.open(), Ok(Signed::Reading(r.clone())));

        let rot = KeyRotation {
            v: FORMAT_VERSION,
            device: r.device.clone(),
            seq: 8,
            new_key: PublicKeyHex(new.verifying_key().to_bytes()),
            device_time: r.device_time,
        };
        let signed = sign_rotation(&rot, &old).expect("sign rotation");
        let env = Envelope::parse(signed.as_bytes()).expect("parse");
        assert_eq!(env.kind(), PayloadKind::KeyRotation);
        env.verify(&old.verifying_key())
            .expect("signed by the old key");
        let Signed::KeyRotation(back) = env.open().expect("open") else {
            panic!("rotation expected")
        };
        assert_eq!(back, rot);
        assert_eq!(back.new_key.verifying_key(), Ok(new.verifying_key()));
        // the reading-only verifier refuses a rotation
        assert!(matches!(
            verify(signed.as_bytes(), &old.verifying_key()),
            Err(ReadingError::Payload(_))
        ));
    }

    #[test]
    fn public_keys_must_be_usable() {
        let good = hex::encode(key(3).verifying_key().to_bytes());
        assert!(PublicKeyHex::parse(&good).is_ok());
        assert!(PublicKeyHex::parse("abcd").is_err());
        assert!(PublicKeyHex::parse(&"zz".repeat(32)).is_err());
        // the identity point is a weak key
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            PublicKeyHex::parse(&hex::encode(identity)),
            Err(ReadingError::BadPublicKey(_))
        ));
    }
}
