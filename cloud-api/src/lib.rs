//! METCON's cloud API: the JSON API over HTTP, storage, authentication and the audit chain,
//! wired around the pure domain in `metcon-shared`.
//!
//! - [`config`]: defaults ← TOML ← environment.
//! - [`store`]: the storage trait and its SQLite and MongoDB backends.
//! - [`transfer`]: export / import of every record between backends.
//! - [`auth`]: passwords, tokens, throttling.
//! - [`audit`]: the hash-chained audit log and its verification.
//! - [`http`]: routes, extractors, problem+json errors, OpenAPI.
//! - [`demo`]: the demo data set for the README's first command.
//! - [`reports`]: analytics reports, CSV, charts and the data generator.
//! - [`app`]: start-up and graceful shutdown.

pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod demo;
pub mod http;
pub mod reports;
pub mod store;
pub mod telemetry;
pub mod transfer;
