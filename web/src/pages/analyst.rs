//! Analyst: reports.

use askama::Template;

use super::Layout;

/// Analyst: the report catalogue.
#[derive(Debug, Template)]
#[template(path = "reports.html")]
pub struct ReportsPage {
    pub layout: Layout,
    pub reports: Vec<ReportLink>,
}

#[derive(Debug, Clone)]
pub struct ReportLink {
    pub name: String,
    pub title: String,
    pub description: String,
}

/// Analyst: one report with its filters, table, chart and CSV link.
#[derive(Debug, Template)]
#[template(path = "report.html")]
pub struct ReportPage {
    pub layout: Layout,
    pub name: String,
    pub title: String,
    pub filters: Vec<FilterField>,
    pub summary: Vec<(String, String)>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub total: u64,
    pub query: String,
    pub can_export: bool,
}

#[derive(Debug, Clone)]
pub struct FilterField {
    pub name: String,
    pub label: String,
    pub value: String,
    /// `date` or `text`.
    pub input: String,
}
