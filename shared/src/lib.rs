//! METCON's domain: the rules of a precious-metal refinery's chain of custody as plain data
//! and pure functions.
//!
//! No I/O, no clock, no async runtime: time, ids and the acting user come in as arguments, so
//! every rule is testable without a server. The cloud API wires storage and HTTP around it.
//!
//! - [`mass`]: exact decimal masses and units.
//! - [`tolerance`]: absolute and relative tolerances and the inclusive tolerance decision.
//! - [`flow`]: versioned flow definitions, their validation and lifecycle.
//! - [`flow_diff`]: what changed between two versions of a flow.
//! - [`batch`]: the event-sourced batch aggregate (commands → events → state).
//! - [`batch_number`]: `B-YYYY-NNNN` batch numbers.
//! - [`role`]: roles, the permission table and station scoping.
//! - [`reading`]: signed scale readings (payload and COSE_Sign1 envelope).
//! - [`topic`]: the MQTT topic scheme.
//! - [`device`]: device settings and the enrollment contract.
//! - [`calibration`]: scale calibration records and whether a scale may decide a mass check.

pub mod batch;
pub mod batch_number;
pub mod calibration;
pub mod device;
pub mod flow;
pub mod flow_diff;
pub mod mass;
pub mod reading;
pub mod role;
pub mod tolerance;
pub mod topic;
