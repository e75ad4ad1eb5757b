//! Admin: flows.

use askama::Template;

use super::Layout;
use super::Problem;

/// Admin: flows.
#[derive(Debug, Template)]
#[template(path = "flows.html")]
pub struct FlowsPage {
    pub layout: Layout,
    pub flows: Vec<FlowRow>,
    pub new_flow_id: String,
    pub json: String,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub struct FlowRow {
    pub flow_id: String,
    pub version: u32,
    pub name: String,
    pub status: String,
    pub steps: usize,
}

/// Admin: one flow version in the JSON editor.
#[derive(Debug, Template)]
#[template(path = "flow_edit.html")]
pub struct FlowEditPage {
    pub layout: Layout,
    pub flow_id: String,
    pub version: u32,
    pub status: String,
    pub editable: bool,
    pub json: String,
    pub problems: Vec<Problem>,
    pub versions: Vec<FlowRow>,
}
