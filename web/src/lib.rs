//! The METCON web UI's presentation: view models (plain data, already formatted for people),
//! the askama templates in `templates/` that render them (checked when this crate compiles),
//! and the stylesheet and script in `assets/`, embedded in the binary.
//!
//! This crate knows nothing of HTTP, the store or the domain: `metcon-cloud`'s `ui` module
//! loads what a page shows through the same functions as the JSON API, fills these structs
//! and serves the result. Keeping the two apart keeps the templates quick to compile and
//! lets them be unit-tested without a server.

pub mod pages;
pub mod qr;

pub use askama::Template;

/// The stylesheet, served at [`CSS_PATH`].
pub const CSS: &str = include_str!("../assets/app.css");
/// The script (live weight, polling fragments), served at [`JS_PATH`].
pub const JS: &str = include_str!("../assets/app.js");
pub const CSS_PATH: &str = "/assets/app.css";
pub const JS_PATH: &str = "/assets/app.js";

/// The name of the hidden form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
