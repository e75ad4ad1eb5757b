//! Report documents: the filters echoed, a summary, grouped breakdowns, one page of detail
//! rows and the total. Sums and counts come from the store as exact integers; averages and
//! percentages are derived here as decimals rounded half away from zero to four places, and
//! percentiles are nearest-rank (the p-th percentile of n sorted values is the value at
//! rank ⌈p·n/100⌉), so every backend gives the same numbers.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::rows::{self, grams, percent, seconds};
use super::{ReportFilter, ReportName, ReportStore, Window};
use crate::store::devices::DeviceStore;
use crate::store::{StoreResult, DEFAULT_STUCK_HOURS};

/// Detail rows per page on screen.
pub const PER_PAGE: u32 = 100;

/// `sum / n` of values in units of 0.0001, rounded to four decimals.
pub fn mean_e4(sum_e4: i64, n: u64) -> Option<Decimal> {
    (n > 0).then(|| {
        (Decimal::new(sum_e4, 4) / Decimal::from(n))
            .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
            .normalize()
    })
}

/// Nearest-rank percentile of ascending `sorted`.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (p as usize * n).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn s<T: ToString>(v: Option<T>) -> Value {
    v.map(|x| Value::String(x.to_string()))
        .unwrap_or(Value::Null)
}

/// The filters that apply to `name`, as given (unset ones left out).
pub fn echo_filters(name: ReportName, f: &ReportFilter) -> Value {
    let mut m = Map::new();
    let all = serde_json::to_value(f).unwrap_or(Value::Null);
    for key in name.filters() {
        let field = match *key {
            "status" if name == ReportName::MassChecks => "within",
            other => other,
        };
        match all.get(field) {
            Some(Value::Null) | None => {}
            Some(Value::Bool(b)) if field == "within" => {
                m.insert("status".into(), json!(if *b { "within" } else { "out" }));
            }
            Some(v) => {
                m.insert((*key).into(), v.clone());
            }
        }
    }
    if name == ReportName::Wip && f.stuck_hours.is_none() {
        m.insert("stuck_hours".into(), json!(DEFAULT_STUCK_HOURS));
    }
    Value::Object(m)
}

/// Builds the whole report document for page `page` (1-based).
pub async fn report<S: ReportStore + DeviceStore + ?Sized>(
    store: &S,
    name: ReportName,
    f: &ReportFilter,
    now: OffsetDateTime,
    page: u32,
) -> StoreResult<Value> {
    let page = page.max(1);
    let window = Window::Offset {
        offset: (page as u64 - 1) * PER_PAGE as u64,
        limit: PER_PAGE,
    };
    let mut health = None;
    let (summary, breakdowns, total) = match name {
        ReportName::DeviceHealth => {
            let h = super::device_health::compute(store, f, now).await?;
            let parts = super::device_health::parts(&h);
            health = Some(h);
            parts
        }
        ReportName::MassChecks => mass_checks(store, f).await?,
        ReportName::Wip => wip(store, f, now).await?,
        ReportName::CycleTimes => cycle_times(store, f).await?,
        ReportName::Exceptions => exceptions(store, f).await?,
        ReportName::MassBalance => mass_balance(store, f).await?,
        ReportName::WeightList => weight_list(store, f).await?,
    };
    let (cells, _) = match &health {
        Some(h) => super::device_health::page(h, window),
        None => rows::page(store, name, f, now, window).await?,
    };
    let columns = rows::columns(name);
    let rows: Vec<Value> = cells
        .into_iter()
        .map(|r| {
            Value::Object(
                columns
                    .iter()
                    .zip(r)
                    .map(|(c, v)| (c.to_string(), Value::String(v)))
                    .collect(),
            )
        })
        .collect();
    Ok(json!({
        "report": name.as_str(),
        "title": name.title(),
        "as_of": rows::rfc3339(now),
        "filters": echo_filters(name, f),
        "summary": summary,
        "breakdowns": breakdowns,
        "columns": columns,
        "rows": rows,
        "page": page,
        "per_page": PER_PAGE,
        "total": total,
    }))
}

type Parts = (Value, Value, u64);

#[derive(Default)]
struct McAgg {
    total: u64,
    within: u64,
    pct_n: u64,
    pct_sum: i64,
    abs_sum: i64,
    var_sum: i64,
}

impl McAgg {
    fn add(&mut self, g: &super::MassCheckGroup) {
        self.total += g.count;
        if g.within {
            self.within += g.count;
        }
        self.pct_n += g.pct_count;
        self.pct_sum += g.sum_pct_e4;
        self.abs_sum += g.sum_abs_pct_e4;
        self.var_sum += g.sum_variance_e4;
    }
    fn json(&self) -> Value {
        json!({
            "total": self.total,
            "within": self.within,
            "out": self.total - self.within,
            "avg_variance_pct": s(mean_e4(self.pct_sum, self.pct_n)),
            "avg_abs_variance_pct": s(mean_e4(self.abs_sum, self.pct_n)),
            "total_variance_g": grams(self.var_sum).to_string(),
        })
    }
}

async fn mass_checks<S: ReportStore + ?Sized>(store: &S, f: &ReportFilter) -> StoreResult<Parts> {
    let groups = store.mass_check_groups(f).await?;
    let mut all = McAgg::default();
    let mut by_station: BTreeMap<&str, McAgg> = BTreeMap::new();
    let mut by_operator: BTreeMap<&str, McAgg> = BTreeMap::new();
    for g in &groups {
        all.add(g);
        by_station.entry(&g.station).or_default().add(g);
        by_operator.entry(&g.operator).or_default().add(g);
    }
    let list = |m: BTreeMap<&str, McAgg>, key: &str| -> Vec<Value> {
        m.into_iter()
            .map(|(k, a)| {
                let mut v = a.json();
                if let Some(o) = v.as_object_mut() {
                    o.insert(key.into(), json!(k));
                }
                v
            })
            .collect()
    };
    let breakdowns = json!({
        "by_station": list(by_station, "station"),
        "by_operator": list(by_operator, "operator"),
    });
    Ok((all.json(), breakdowns, all.total))
}

async fn wip<S: ReportStore + ?Sized>(
    store: &S,
    f: &ReportFilter,
    now: OffsetDateTime,
) -> StoreResult<Parts> {
    let groups = store.wip_groups(f, now).await?;
    let total: u64 = groups.iter().map(|g| g.count).sum();
    let stuck: u64 = groups.iter().map(|g| g.stuck).sum();
    let mut by_station: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for g in &groups {
        let e = by_station
            .entry(g.station.clone().unwrap_or_default())
            .or_default();
        e.0 += g.count;
        e.1 += g.stuck;
    }
    let summary = json!({
        "unfinished": total,
        "stuck": stuck,
        "stuck_hours": f.stuck_hours.unwrap_or(DEFAULT_STUCK_HOURS),
        "oldest_at_station_since": s(groups.iter().filter_map(|g| g.oldest_since).min().map(rows::rfc3339)),
    });
    let breakdowns = json!({
        "by_station_status": groups.iter().map(|g| json!({
            "station": g.station, "status": g.status, "count": g.count, "stuck": g.stuck,
            "oldest_at_station_since": s(g.oldest_since.map(rows::rfc3339)),
        })).collect::<Vec<_>>(),
        "by_station": by_station.into_iter().map(|(st, (n, k))| json!({
            "station": st, "count": n, "stuck": k,
        })).collect::<Vec<_>>(),
    });
    Ok((summary, breakdowns, total))
}

fn duration_stats(sorted: &[i64]) -> Value {
    let sum: i64 = sorted.iter().sum();
    json!({
        "visits": sorted.len(),
        "median_s": s(percentile(sorted, 50).map(seconds)),
        "p90_s": s(percentile(sorted, 90).map(seconds)),
        "mean_s": s((!sorted.is_empty()).then(|| {
            (seconds(sum) / Decimal::from(sorted.len()))
                .round_dp_with_strategy(3, RoundingStrategy::MidpointAwayFromZero)
                .normalize()
        })),
    })
}

async fn cycle_times<S: ReportStore + ?Sized>(store: &S, f: &ReportFilter) -> StoreResult<Parts> {
    let groups = store.duration_groups(f).await?;
    let mut all: Vec<i64> = Vec::new();
    let mut by_station: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for g in &groups {
        all.extend_from_slice(&g.durations_ms);
        by_station
            .entry(&g.station)
            .or_default()
            .extend_from_slice(&g.durations_ms);
    }
    all.sort_unstable();
    let by_station: Vec<Value> = by_station
        .into_iter()
        .map(|(st, mut d)| {
            d.sort_unstable();
            let mut v = duration_stats(&d);
            if let Some(o) = v.as_object_mut() {
                o.insert("station".into(), json!(st));
            }
            v
        })
        .collect();
    let by_flow: Vec<Value> = groups
        .iter()
        .map(|g| {
            let mut v = duration_stats(&g.durations_ms);
            if let Some(o) = v.as_object_mut() {
                o.insert("flow_id".into(), json!(g.flow_id));
                o.insert("flow_version".into(), json!(g.flow_version));
                o.insert("station".into(), json!(g.station));
            }
            v
        })
        .collect();
    let total = all.len() as u64;
    Ok((
        duration_stats(&all),
        json!({ "by_station": by_station, "by_flow_version_station": by_flow }),
        total,
    ))
}

async fn exceptions<S: ReportStore + ?Sized>(store: &S, f: &ReportFilter) -> StoreResult<Parts> {
    let groups = store.exception_groups(f).await?;
    let total: u64 = groups.iter().map(|g| g.count).sum();
    let open: u64 = groups
        .iter()
        .filter(|g| g.decision == "open")
        .map(|g| g.count)
        .sum();
    let mut by_kind: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut by_station: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_approver: BTreeMap<&str, u64> = BTreeMap::new();
    for g in &groups {
        *by_kind
            .entry(&g.kind)
            .or_default()
            .entry(&g.decision)
            .or_default() += g.count;
        *by_station.entry(&g.station).or_default() += g.count;
        if let Some(by) = &g.decided_by {
            *by_approver.entry(by).or_default() += g.count;
        }
    }
    let ocr_mismatches: u64 = groups
        .iter()
        .filter(|g| g.kind == "ocr_mismatch")
        .map(|g| g.count)
        .sum();
    let summary = json!({
        "total": total,
        "open": open,
        "ocr_mismatches": ocr_mismatches,
    });
    let breakdowns = json!({
        "by_kind": by_kind.into_iter().map(|(k, d)| json!({
            "kind": k, "count": d.values().sum::<u64>(), "by_decision": d,
        })).collect::<Vec<_>>(),
        "by_station": by_station.into_iter().map(|(k, n)| json!({ "station": k, "count": n })).collect::<Vec<_>>(),
        "by_decider": by_approver.into_iter().map(|(k, n)| json!({ "decided_by": k, "count": n })).collect::<Vec<_>>(),
    });
    Ok((summary, breakdowns, total))
}

async fn mass_balance<S: ReportStore + ?Sized>(store: &S, f: &ReportFilter) -> StoreResult<Parts> {
    let (t, groups) = store.balance_groups(f).await?;
    let change = t.last_e4 - t.first_e4;
    let summary = json!({
        "batches": t.batches,
        "weighings": t.weighings,
        "first_gross_g": grams(t.first_e4).to_string(),
        "last_gross_g": grams(t.last_e4).to_string(),
        "change_g": grams(change).to_string(),
        "change_pct": s(percent(Decimal::from(change), Decimal::from(t.first_e4))),
    });
    let by_station: Vec<Value> = groups
        .iter()
        .map(|g| {
            json!({
                "station": g.station,
                "weighings": g.weighings,
                "transitions": g.transitions,
                "change_g": grams(g.delta_e4).to_string(),
                "change_pct": s(percent(Decimal::from(g.delta_e4), Decimal::from(g.previous_e4))),
            })
        })
        .collect();
    Ok((summary, json!({ "by_station": by_station }), t.weighings))
}

/// Weight-list totals are sums of the lines as printed (LBMA practice), so the whole list
/// is read once, page by page.
async fn weight_list<S: ReportStore + ?Sized>(store: &S, f: &ReportFilter) -> StoreResult<Parts> {
    let mut cursor = None;
    let (mut bars, mut gross, mut fine) = (0u64, Decimal::ZERO, Decimal::ZERO);
    let mut by_pipeline: BTreeMap<String, (u64, Decimal)> = BTreeMap::new();
    loop {
        let page = store
            .weight_list_rows(
                f,
                Window::After {
                    cursor,
                    limit: 5000,
                },
            )
            .await?;
        for r in page.rows {
            let pipeline = r.pipeline.clone();
            let (_, g, fo) = rows::weight_line(r);
            bars += 1;
            gross += g;
            fine += fo;
            let e = by_pipeline.entry(pipeline).or_default();
            e.0 += 1;
            e.1 += fo;
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let summary = json!({
        "bars": bars,
        "gross_g": gross.normalize().to_string(),
        "fine_ozt": fine.to_string(),
    });
    let breakdowns = json!({
        "by_pipeline": by_pipeline.into_iter().map(|(p, (n, fo))| json!({
            "pipeline": p, "bars": n, "fine_ozt": fo.to_string(),
        })).collect::<Vec<_>>(),
    });
    Ok((summary, breakdowns, bars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&v, 100), Some(10));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
    }

    #[test]
    fn means_are_exact_then_rounded() {
        assert_eq!(mean_e4(3, 2).map(|d| d.to_string()), Some("0.0002".into()));
        assert_eq!(
            mean_e4(-12_345, 1).map(|d| d.to_string()),
            Some("-1.2345".into())
        );
        assert_eq!(mean_e4(1, 0), None);
    }
}
