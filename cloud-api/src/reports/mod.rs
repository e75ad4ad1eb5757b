//! Analytics: pre-made reports (seed pattern 6) over read-model tables that the store keeps
//! in the same transaction as the batch events they are derived from.
//!
//! A report is a defined query: a name, the filters it accepts, a summary, grouped
//! breakdowns, detail rows (pages of 100 on screen; every row in the CSV export, in the same
//! order and with the same columns) and a chart. The store answers backend-neutral questions
//! ([`ReportStore`]: filters in, typed rows and groups out); [`compute`] turns those into the
//! report documents, so summaries are derived from exact integers the same way on every
//! backend. [`csv`] writes RFC 4180 with formula injection neutralised, [`chart`] draws SVG
//! with `plotters`, [`cache`] keeps results briefly and drops them when events arrive, and
//! [`generate`] seeds realistic history through the real domain.

pub mod cache;
pub mod chart;
pub mod compute;
pub mod csv;
pub mod device_health;
pub mod fineness;
pub mod generate;

pub mod model;
pub mod rows;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::store::StoreResult;
pub use model::*;

/// The reports there are; the name is the URL segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportName {
    MassChecks,
    Wip,
    CycleTimes,
    Exceptions,
    MassBalance,
    WeightList,
    DeviceHealth,
}

impl ReportName {
    pub const ALL: [ReportName; 7] = [
        ReportName::MassChecks,
        ReportName::Wip,
        ReportName::CycleTimes,
        ReportName::Exceptions,
        ReportName::MassBalance,
        ReportName::WeightList,
        ReportName::DeviceHealth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportName::MassChecks => "mass-checks",
            ReportName::Wip => "wip",
            ReportName::CycleTimes => "cycle-times",
            ReportName::Exceptions => "exceptions",
            ReportName::MassBalance => "mass-balance",
            ReportName::WeightList => "weight-list",
            ReportName::DeviceHealth => "device-health",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ReportName::MassChecks => "Mass checks & variances",
            ReportName::Wip => "WIP board",
            ReportName::CycleTimes => "Cycle times per station and flow version",
            ReportName::Exceptions => "Exceptions (review by exception)",
            ReportName::MassBalance => "Batch mass balance",
            ReportName::WeightList => "LBMA-style weight list",
            ReportName::DeviceHealth => "Device health",
        }
    }

    /// The query parameters this report accepts (besides `page`).
    pub fn filters(self) -> &'static [&'static str] {
        match self {
            ReportName::MassChecks => &[
                "from",
                "to",
                "pipeline",
                "station",
                "operator",
                "status",
                "flow_id",
                "flow_version",
            ],
            ReportName::Wip => &["pipeline", "station", "status", "stuck_hours"],
            ReportName::CycleTimes => &[
                "from",
                "to",
                "pipeline",
                "station",
                "flow_id",
                "flow_version",
            ],
            ReportName::Exceptions => &["from", "to", "pipeline", "station", "operator", "kind"],
            ReportName::DeviceHealth => &["from", "to", "station"],
            ReportName::MassBalance | ReportName::WeightList => {
                &["from", "to", "pipeline", "flow_id", "flow_version"]
            }
        }
    }
}

impl std::str::FromStr for ReportName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReportName::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ReportName::ALL.iter().map(|r| r.as_str()).collect();
                format!("there is no report {s:?}; reports are {}", names.join(", "))
            })
    }
}

/// The questions reports ask the store. Every method is read-only; the read model behind it
/// is written in the same transaction as the events (see `store::sqlite_readmodel`).
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Changes whenever batch events are appended; cached reports of an older generation are
    /// stale.
    async fn report_generation(&self) -> StoreResult<u64>;

    async fn mass_check_groups(&self, f: &ReportFilter) -> StoreResult<Vec<MassCheckGroup>>;
    /// Newest first.
    async fn mass_check_rows(&self, f: &ReportFilter, w: Window)
        -> StoreResult<Rows<MassCheckRow>>;
    /// The same rows as [`ReportStore::mass_check_rows`], appended to `out` as CSV records,
    /// and the cursor after them; with `through` (a [`PageEnd::At`] of this backend), the
    /// rows stop at that row, inclusive. The largest export has its own method so that a
    /// backend can write cells straight from its rows; this default goes through the typed
    /// rows and, like the default [`ReportStore::mass_check_page_end`], knows no page ends.
    async fn mass_check_csv(
        &self,
        f: &ReportFilter,
        w: Window,
        through: Option<Cursor>,
        mut out: csv::CsvWriter,
    ) -> StoreResult<(csv::CsvWriter, Option<Cursor>)> {
        if through.is_some() {
            return Err(crate::store::StoreError::Backend(
                "this store does not delimit pages ahead".into(),
            ));
        }
        let r = self.mass_check_rows(f, w).await?;
        for row in &r.rows {
            let at = rows::rfc3339(row.at);
            rows::MassCheckCells::of(row, &at).write(&mut out);
        }
        Ok((out, r.next))
    }

    /// Where the page of `limit` mass checks after `cursor` ends, from an index alone. The
    /// default does not know.
    async fn mass_check_page_end(
        &self,
        _f: &ReportFilter,
        _cursor: Option<Cursor>,
        _limit: u32,
    ) -> StoreResult<PageEnd> {
        Ok(PageEnd::Unknown)
    }

    async fn wip_groups(&self, f: &ReportFilter, now: OffsetDateTime)
        -> StoreResult<Vec<WipGroup>>;
    /// Longest at their station first.
    async fn wip_rows(
        &self,
        f: &ReportFilter,
        now: OffsetDateTime,
        w: Window,
    ) -> StoreResult<Rows<WipRow>>;

    async fn duration_groups(&self, f: &ReportFilter) -> StoreResult<Vec<DurationGroup>>;
    /// Most recently finished first.
    async fn visit_rows(&self, f: &ReportFilter, w: Window) -> StoreResult<Rows<VisitRow>>;

    async fn exception_groups(&self, f: &ReportFilter) -> StoreResult<Vec<ExceptionGroup>>;
    /// Newest first.
    async fn exception_rows(&self, f: &ReportFilter, w: Window) -> StoreResult<Rows<ExceptionRow>>;

    async fn balance_groups(
        &self,
        f: &ReportFilter,
    ) -> StoreResult<(BalanceTotals, Vec<BalanceGroup>)>;
    /// By batch (oldest batch first), then weighing order.
    async fn balance_rows(&self, f: &ReportFilter, w: Window) -> StoreResult<Rows<BalanceRow>>;

    /// Batches with an assayed fineness, oldest batch first.
    async fn weight_list_rows(
        &self,
        f: &ReportFilter,
        w: Window,
    ) -> StoreResult<Rows<WeightListRow>>;
}
