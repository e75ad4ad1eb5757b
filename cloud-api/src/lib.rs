//! METCON's cloud API: the JSON API over HTTP, storage, authentication and the audit chain,
//! wired around the pure domain in `metcon-shared`.
//!
//! - [`config`]: defaults ← TOML ← environment.
//! - [`store`]: the storage trait and its SQLite and MongoDB backends.
//! - [`transfer`]: export / import of every record between backends.
//! - [`auth`]: passwords, tokens, throttling.
//! - [`audit`]: the hash-chained audit log and its verification.
//! - [`http`]: routes, extractors, problem+json errors, OpenAPI.
//! - [`demo`]: the demo data set for the README's first command; [`demo_station`] adds a
//!   simulated scale with a real, enrolled edge agent.
//! - [`reports`]: analytics reports, CSV, charts and the data generator.
//! - [`broker`]: the embedded broker and its device gate, or an external broker.
//! - [`ingest`]: signed readings in (verify, de-duplicate, store, bind), live data, fleet.
//! - [`live`]: the hub behind the kiosks' Server-Sent Events.
//! - [`blobs`]: photos by SHA-256 (local folder or S3).
//! - [`photos`]: uploads sniffed, decoded, quality-checked, EXIF; signed URLs.
//! - [`ocr`]: reading scale displays (built-in reader or a private HTTP endpoint).
//! - [`ui`]: the server-rendered web UI (templates in the `metcon-web` crate).
//! - [`app`]: start-up and graceful shutdown.

pub mod app;
pub mod audit;
pub mod auth;
pub mod blobs;
pub mod broker;
pub mod config;
pub mod demo;
pub mod demo_station;
pub mod http;
pub mod ingest;
pub mod live;
pub mod ocr;
pub mod photos;
pub mod reports;
pub mod store;
pub mod telemetry;
pub mod transfer;
pub mod ui;
