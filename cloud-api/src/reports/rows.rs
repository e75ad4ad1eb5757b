//! Detail rows as cells: one function per report turns typed rows into the strings shown on
//! screen and written to CSV, so the export has exactly the rows and columns of the screen.
//! Also the exact arithmetic the rows need (grams from 0.0001 mg units, percentages, troy
//! ounces rounded down the LBMA way).

use rust_decimal::{Decimal, RoundingStrategy};
use time::OffsetDateTime;

use super::{
    BalanceRow, Cursor, ExceptionRow, MassCheckRow, ReportFilter, ReportName, ReportStore,
    VisitRow, WeightListRow, Window, WipRow,
};
use crate::store::devices::DeviceStore;
use crate::store::StoreResult;

/// Grams in one troy ounce, exactly.
pub fn grams_per_ozt() -> Decimal {
    Decimal::new(311_034_768, 7)
}

/// Grams from integer units of 0.0001 mg (1e-7 g), exact.
pub fn grams(e4: i64) -> Decimal {
    Decimal::new(e4, 7).normalize()
}

/// `part / whole × 100`, rounded half away from zero to four decimals; `None` if whole is 0.
pub fn percent(part: Decimal, whole: Decimal) -> Option<Decimal> {
    if whole.is_zero() {
        return None;
    }
    Some(
        (part * Decimal::ONE_HUNDRED / whole)
            .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
            .normalize(),
    )
}

/// Troy ounces from grams, rounded down to 0.001 ozt (weight lists never overstate metal).
pub fn ozt_down(g: Decimal) -> Decimal {
    (g / grams_per_ozt()).round_dp_with_strategy(3, RoundingStrategy::ToZero)
}

/// Fine weight in grams: gross × fineness ‰ / 1000, exact.
pub fn fine_grams(gross_g: Decimal, fineness_permille: Decimal) -> Decimal {
    (gross_g * fineness_permille / Decimal::ONE_THOUSAND).normalize()
}

/// Seconds from milliseconds, exact.
pub fn seconds(ms: i64) -> Decimal {
    Decimal::new(ms, 3).normalize()
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

/// The columns of a report's detail rows, in order.
pub fn columns(name: ReportName) -> &'static [&'static str] {
    match name {
        ReportName::MassChecks => &[
            "at",
            "batch_number",
            "pipeline",
            "flow_id",
            "flow_version",
            "station",
            "step",
            "operator",
            "expected",
            "expected_unit",
            "actual",
            "actual_unit",
            "variance",
            "variance_pct",
            "tolerance_status",
            "source",
            "fineness_permille",
        ],
        ReportName::Wip => &[
            "batch_number",
            "pipeline",
            "flow_id",
            "flow_version",
            "status",
            "station",
            "step",
            "created_at",
            "at_station_since",
            "hours_at_station",
            "stuck",
        ],
        ReportName::CycleTimes => &[
            "batch_number",
            "pipeline",
            "flow_id",
            "flow_version",
            "station",
            "entered_at",
            "left_at",
            "duration_s",
        ],
        ReportName::Exceptions => &[
            "raised_at",
            "batch_number",
            "pipeline",
            "flow_id",
            "flow_version",
            "kind",
            "station",
            "step",
            "raised_by",
            "reason",
            "decision",
            "decided_by",
            "decided_at",
            "decision_reason",
        ],
        ReportName::MassBalance => &[
            "batch_number",
            "pipeline",
            "seq",
            "station",
            "step",
            "at",
            "gross_g",
            "previous_station",
            "change_g",
            "change_pct",
            "fineness_permille",
            "fine_g",
            "fine_ozt",
        ],
        ReportName::DeviceHealth => &[
            "device_id",
            "name",
            "station",
            "state",
            "presence",
            "last_seen",
            "readings",
            "unbound",
            "last_reading_at",
            "rejected",
            "rejected_by_reason",
            "offline_s",
            "offline_pct",
        ],
        ReportName::WeightList => &[
            "batch_number",
            "pipeline",
            "weighed_at",
            "gross_g",
            "gross_ozt",
            "fineness_permille",
            "fine_ozt",
        ],
    }
}

/// Where a row's cells go: a screen row (`Vec<String>`) or the CSV export's buffer
/// ([`super::csv::CsvWriter`]). Rows written through it have the same cells on both.
pub trait CellSink {
    fn cell(&mut self, cell: &str);
    fn int(&mut self, n: i64) {
        self.cell(&n.to_string());
    }
    fn end_row(&mut self);
}

/// A screen row being filled.
#[derive(Debug, Default)]
struct ScreenRow(Vec<String>);

impl CellSink for ScreenRow {
    fn cell(&mut self, cell: &str) {
        self.0.push(cell.to_owned());
    }
    fn end_row(&mut self) {}
}

/// A mass check's cells as borrowed text, so that the SQLite export can write them straight
/// from the database row; `at` is already RFC 3339.
#[derive(Debug)]
pub struct MassCheckCells<'a> {
    pub at: &'a str,
    pub batch_number: &'a str,
    pub pipeline: &'a str,
    pub flow_id: &'a str,
    pub flow_version: i64,
    pub station: &'a str,
    pub step: &'a str,
    pub operator: &'a str,
    pub expected: &'a str,
    pub expected_unit: &'a str,
    pub actual: &'a str,
    pub actual_unit: &'a str,
    pub variance: &'a str,
    pub variance_pct: Option<&'a str>,
    pub within: bool,
    pub source: &'a str,
    pub fineness_permille: Option<&'a str>,
}

impl<'a> MassCheckCells<'a> {
    pub fn of(r: &'a MassCheckRow, at: &'a str) -> MassCheckCells<'a> {
        MassCheckCells {
            at,
            batch_number: &r.batch_number,
            pipeline: &r.pipeline,
            flow_id: &r.flow_id,
            flow_version: i64::from(r.flow_version),
            station: &r.station,
            step: &r.step,
            operator: &r.operator,
            expected: &r.expected,
            expected_unit: &r.expected_unit,
            actual: &r.actual,
            actual_unit: &r.actual_unit,
            variance: &r.variance,
            variance_pct: r.variance_pct.as_deref(),
            within: r.within,
            source: &r.source,
            fineness_permille: r.fineness_permille.as_deref(),
        }
    }

    /// One record, in [`columns`] order.
    pub fn write(&self, out: &mut impl CellSink) {
        out.cell(self.at);
        out.cell(self.batch_number);
        out.cell(self.pipeline);
        out.cell(self.flow_id);
        out.int(self.flow_version);
        out.cell(self.station);
        out.cell(self.step);
        out.cell(self.operator);
        out.cell(self.expected);
        out.cell(self.expected_unit);
        out.cell(self.actual);
        out.cell(self.actual_unit);
        out.cell(self.variance);
        out.cell(self.variance_pct.unwrap_or_default());
        out.cell(if self.within { "within" } else { "out" });
        out.cell(self.source);
        out.cell(self.fineness_permille.unwrap_or_default());
        out.end_row();
    }
}

fn mass_check(r: MassCheckRow) -> Vec<String> {
    let at = rfc3339(r.at);
    let mut row = ScreenRow::default();
    MassCheckCells::of(&r, &at).write(&mut row);
    row.0
}

fn wip(r: WipRow, now: OffsetDateTime) -> Vec<String> {
    let hours = r.at_station_since.map(|s| {
        let ms = (now - s).whole_milliseconds() as i64;
        (Decimal::from(ms) / Decimal::from(3_600_000))
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    });
    vec![
        r.batch_number,
        r.pipeline,
        r.flow_id,
        r.flow_version.to_string(),
        r.status,
        opt(&r.station),
        opt(&r.step),
        rfc3339(r.created_at),
        r.at_station_since.map(rfc3339).unwrap_or_default(),
        opt(&hours),
        r.stuck.to_string(),
    ]
}

fn visit(r: VisitRow) -> Vec<String> {
    vec![
        r.batch_number,
        r.pipeline,
        r.flow_id,
        r.flow_version.to_string(),
        r.station,
        rfc3339(r.entered_at),
        rfc3339(r.left_at),
        seconds(r.duration_ms).to_string(),
    ]
}

fn exception(r: ExceptionRow) -> Vec<String> {
    vec![
        rfc3339(r.raised_at),
        r.batch_number,
        r.pipeline,
        r.flow_id,
        r.flow_version.to_string(),
        r.kind,
        r.station,
        r.step,
        r.raised_by,
        r.reason,
        r.decision,
        opt(&r.decided_by),
        r.decided_at.map(rfc3339).unwrap_or_default(),
        opt(&r.decision_reason),
    ]
}

fn balance(r: BalanceRow) -> Vec<String> {
    let gross = grams(r.actual_e4);
    let change = r.previous_e4.map(|p| grams(r.actual_e4 - p));
    let change_pct = r
        .previous_e4
        .and_then(|p| percent(Decimal::from(r.actual_e4 - p), Decimal::from(p)));
    let fineness = r
        .fineness_permille
        .as_deref()
        .and_then(|f| Decimal::from_str_exact(f).ok());
    let fine = fineness.map(|f| fine_grams(gross, f));
    vec![
        r.batch_number,
        r.pipeline,
        r.seq.to_string(),
        r.station,
        r.step,
        rfc3339(r.at),
        gross.to_string(),
        opt(&r.previous_station),
        opt(&change),
        opt(&change_pct),
        opt(&r.fineness_permille),
        opt(&fine),
        opt(&fine.map(ozt_down)),
    ]
}

/// The weight-list cells, and the line's gross g and fine ozt for the totals.
pub fn weight_line(r: WeightListRow) -> (Vec<String>, Decimal, Decimal) {
    let gross = grams(r.gross_e4);
    let fineness = Decimal::from_str_exact(&r.fineness_permille).unwrap_or_default();
    let fine_ozt = ozt_down(fine_grams(gross, fineness));
    let cells = vec![
        r.batch_number,
        r.pipeline,
        rfc3339(r.weighed_at),
        gross.to_string(),
        ozt_down(gross).to_string(),
        r.fineness_permille,
        fine_ozt.to_string(),
    ];
    (cells, gross, fine_ozt)
}

/// One window of a report's detail rows as cells, and the cursor after it.
pub async fn page<S: ReportStore + DeviceStore + ?Sized>(
    store: &S,
    name: ReportName,
    f: &ReportFilter,
    now: OffsetDateTime,
    w: Window,
) -> StoreResult<(Vec<Vec<String>>, Option<Cursor>)> {
    Ok(match name {
        ReportName::MassChecks => {
            let r = store.mass_check_rows(f, w).await?;
            (r.rows.into_iter().map(mass_check).collect(), r.next)
        }
        ReportName::Wip => {
            let r = store.wip_rows(f, now, w).await?;
            (r.rows.into_iter().map(|x| wip(x, now)).collect(), r.next)
        }
        ReportName::CycleTimes => {
            let r = store.visit_rows(f, w).await?;
            (r.rows.into_iter().map(visit).collect(), r.next)
        }
        ReportName::Exceptions => {
            let r = store.exception_rows(f, w).await?;
            (r.rows.into_iter().map(exception).collect(), r.next)
        }
        ReportName::MassBalance => {
            let r = store.balance_rows(f, w).await?;
            (r.rows.into_iter().map(balance).collect(), r.next)
        }
        ReportName::DeviceHealth => {
            let h = super::device_health::compute(store, f, now).await?;
            super::device_health::page(&h, w)
        }
        ReportName::WeightList => {
            let r = store.weight_list_rows(f, w).await?;
            (
                r.rows.into_iter().map(|x| weight_line(x).0).collect(),
                r.next,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("test literal")
    }

    #[test]
    fn grams_are_exact() {
        assert_eq!(grams(10_000_000), d("1"));
        assert_eq!(grams(9_951_234_567), d("995.1234567"));
        assert_eq!(grams(-61_000_000), d("-6.1"));
    }

    #[test]
    fn troy_ounces_round_down_to_a_thousandth() {
        // 1 ozt exactly.
        assert_eq!(ozt_down(d("31.1034768")), d("1.000"));
        // A hair under 1 ozt is 0.999, never 1.000.
        assert_eq!(ozt_down(d("31.1034767")), d("0.999"));
        // A 400 ozt good-delivery bar of 995.0 ‰: 12441.39072 g gross.
        let gross = d("12441.39072");
        assert_eq!(ozt_down(gross), d("400.000"));
        assert_eq!(ozt_down(fine_grams(gross, d("995.0"))), d("398.000"));
    }

    #[test]
    fn percentages_round_half_away_from_zero() {
        assert_eq!(percent(d("-6.1"), d("1000")), Some(d("-0.61")));
        assert_eq!(percent(d("1"), d("3")), Some(d("33.3333")));
        assert_eq!(percent(d("2"), d("3")), Some(d("66.6667")));
        assert_eq!(percent(d("1"), d("0")), None);
    }
}
