//! The METCON edge agent as a library: everything `metcon-edge` runs, testable on its own.
//!
//! - [`scale`]: protocol parsers, framing, transports, probing, stability filter, driver.
//! - [`keystore`]: the device's Ed25519 key pair on disk.
//! - [`outbox`]: the durable, bounded, ordered outbox and the sequence counter.
//! - [`publisher`]: the MQTT connection (readings, live, status, commands, config).
//! - [`camera`]: frame sources (file/folder, HTTP snapshot; V4L2 behind a feature).
//! - [`config`]: the TOML configuration and its validation.
//! - [`agent`]: wiring: capture → frame → sign → outbox → publish.
//! - [`enroll`]: one-time enrollment with the cloud, which writes the configuration.

pub mod agent;
pub mod camera;
pub mod config;
pub mod enroll;
pub mod health;
pub mod keystore;
pub mod outbox;
pub mod publisher;
pub mod scale;
