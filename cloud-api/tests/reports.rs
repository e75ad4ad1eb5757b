//! Analytics against the real server: a generated history (300 batches through the real
//! domain), every report's numbers — filters included — checked against a brute-force
//! computation over the raw events (read back with `metcon-cloud export`, so the same test
//! runs on SQLite and, with `METCON_TEST_STORE=mongodb`, on MongoDB), and CSV exports parsed
//! back with the `csv` crate. (Live events, permissions and bad input: `reports_access.rs`.)
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashMap};

use metcon_shared::batch::{
    BatchEvent, BatchState, BatchStatus, FlagKind, MassSource, RecordedEvent,
};
use metcon_shared::flow::Flow;
use reqwest::StatusCode;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;
use support::World;

/// The raw material: every batch's events, folded states and pinned flows.
struct Raw {
    batches: Vec<(BatchState, Vec<RecordedEvent>, Flow)>,
}

/// Every flow version and batch event, from an export of the server's store.
fn raw(w: &World) -> Raw {
    let file = w.app.dir.path().join("raw-export.jsonl");
    let (ok, out) = w.app.cli(&["export", "--out", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    let mut flows = HashMap::new();
    let mut by_batch: BTreeMap<String, Vec<RecordedEvent>> = BTreeMap::new();
    for line in std::fs::read_to_string(&file).unwrap().lines().skip(1) {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["kind"].as_str().unwrap() {
            "flow" => {
                let f: Flow = serde_json::from_value(v["data"].clone()).unwrap();
                flows.insert((f.flow_id.clone(), f.version), f);
            }
            "batch" => {
                let events: Vec<RecordedEvent> =
                    serde_json::from_value(v["data"]["events"].clone()).unwrap();
                by_batch.insert(
                    v["data"]["state"]["batch_id"].as_str().unwrap().to_string(),
                    events,
                );
            }
            _ => {}
        }
    }
    let batches = by_batch
        .into_values()
        .map(|events| {
            let state = BatchState::replay(&events).unwrap();
            let flow = flows[&(state.flow_id.clone(), state.flow_version)].clone();
            (state, events, flow)
        })
        .collect();
    Raw { batches }
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str_exact(
        v.as_str()
            .unwrap_or_else(|| panic!("not a decimal string: {v}")),
    )
    .unwrap()
}

fn mean4(sum: Decimal, n: usize) -> Decimal {
    (sum / Decimal::from(n))
        .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

fn nearest_rank(sorted: &[i64], p: usize) -> i64 {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

struct Check<'a> {
    w: &'a World,
}

impl Check<'_> {
    async fn report(&self, path: &str) -> Value {
        let (s, v) = self.w.app.get(path, &self.w.analyst).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        v
    }
    async fn csv(&self, path: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let res = self
            .w
            .app
            .client
            .get(format!("{}{path}", self.w.app.base))
            .bearer_auth(&self.w.analyst)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        csv_rows(&res.text().await.unwrap())
    }
}

struct Weighing<'a> {
    state: &'a BatchState,
    rec: &'a RecordedEvent,
    station: &'a str,
    within: bool,
    pct: Option<Decimal>,
    actual_g: Decimal,
    manual: bool,
    note: Option<&'a str>,
}

fn weighings(raw: &Raw) -> Vec<Weighing<'_>> {
    let mut out = Vec::new();
    for (state, events, _) in &raw.batches {
        for rec in events {
            if let BatchEvent::MassChecked {
                station_id,
                actual,
                check,
                source,
                note,
                ..
            } = &rec.event
            {
                out.push(Weighing {
                    state,
                    rec,
                    station: station_id,

                    within: check.within,
                    pct: check.variance_pct,
                    actual_g: actual.to_milligrams() / Decimal::ONE_THOUSAND,
                    manual: matches!(source, MassSource::Manual),
                    note: note.as_deref(),
                });
            }
        }
    }
    out
}

/// Summary numbers of a set of weighings, as the report defines them.
fn mc_summary(ws: &[&Weighing<'_>]) -> (usize, usize, Option<Decimal>) {
    let within = ws.iter().filter(|w| w.within).count();
    let pcts: Vec<Decimal> = ws.iter().filter_map(|w| w.pct).collect();
    let avg = (!pcts.is_empty()).then(|| mean4(pcts.iter().sum(), pcts.len()));
    (ws.len(), within, avg)
}

#[tokio::test]
async fn every_report_matches_a_brute_force_computation_over_the_raw_events() {
    let w = World::new().await;
    let (ok, out) = w.app.cli(&[
        "generate",
        "--batches",
        "300",
        "--days",
        "30",
        "--seed",
        "42",
    ]);
    assert!(ok, "{out}");
    let raw = raw(&w);
    assert_eq!(raw.batches.len(), 300);
    let c = Check { w: &w };
    let all = weighings(&raw);

    // --- mass checks: no filter, then each filter ---------------------------------------
    let some_day = all[all.len() / 2].rec.at.date();
    let from = some_day - time::Duration::days(3);
    let to = some_day + time::Duration::days(2);
    let op = all[0].rec.actor.username.clone();
    type Pred = Box<dyn Fn(&Weighing<'_>) -> bool>;
    let op2 = op.clone();
    let cases: Vec<(String, Pred)> = vec![
        (String::new(), Box::new(|_| true)),
        (
            "station=refining".into(),
            Box::new(|w| w.station == "refining"),
        ),
        (
            format!("operator={op}"),
            Box::new(move |w| w.rec.actor.username == op2),
        ),
        ("status=out".into(), Box::new(|w| !w.within)),
        ("status=within".into(), Box::new(|w| w.within)),
        (
            "pipeline=silver".into(),
            Box::new(|w| w.state.pipeline == "silver"),
        ),
        (
            "flow_id=gen_gold_refining&flow_version=2".into(),
            Box::new(|w| w.state.flow_id == "gen_gold_refining" && w.state.flow_version == 2),
        ),
        (
            format!("from={from}&to={to}"),
            Box::new(move |w| w.rec.at.date() >= from && w.rec.at.date() <= to),
        ),
        (
            format!("from={from}&to={to}&station=casting&status=out"),
            Box::new(move |w| {
                w.rec.at.date() >= from
                    && w.rec.at.date() <= to
                    && w.station == "casting"
                    && !w.within
            }),
        ),
    ];
    for (q, pred) in &cases {
        let ws: Vec<&Weighing<'_>> = all.iter().filter(|w| pred(w)).collect();
        let (total, within, avg) = mc_summary(&ws);
        let v = c.report(&format!("/api/reports/mass-checks?{q}")).await;
        let s = &v["summary"];
        assert_eq!(s["total"], total, "{q}: {s}");
        assert_eq!(s["within"], within, "{q}");
        assert_eq!(s["out"], total - within, "{q}");
        assert_eq!(
            s["avg_variance_pct"]
                .as_str()
                .map(|x| Decimal::from_str_exact(x).unwrap()),
            avg,
            "{q}"
        );
        assert_eq!(v["total"], total, "{q}");
        assert_eq!(v["rows"].as_array().unwrap().len(), total.min(100), "{q}");
        let mut by_station: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_operator: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for w in &ws {
            *by_station.entry(w.station).or_default() += 1;
            let e = by_operator.entry(&w.rec.actor.username).or_default();
            e.0 += 1;
            e.1 += !w.within as usize;
        }
        let got: BTreeMap<&str, usize> = v["breakdowns"]["by_station"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["station"].as_str().unwrap(),
                    b["total"].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(got, by_station, "{q}");
        let got: BTreeMap<&str, (usize, usize)> = v["breakdowns"]["by_operator"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["operator"].as_str().unwrap(),
                    (
                        b["total"].as_u64().unwrap() as usize,
                        b["out"].as_u64().unwrap() as usize,
                    ),
                )
            })
            .collect();
        assert_eq!(got, by_operator, "{q}");
        if !q.is_empty() {
            assert!(
                !v["filters"].as_object().unwrap().is_empty(),
                "filters echoed: {}",
                v["filters"]
            );
        }
        // The CSV has exactly the filtered rows, newest first, same cells as the screen.
        let (header, rows) = c.csv(&format!("/api/reports/mass-checks/csv?{q}")).await;
        assert_eq!(
            header,
            v["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(rows.len(), total, "{q}");
        for (i, r) in v["rows"].as_array().unwrap().iter().enumerate() {
            for (j, col) in header.iter().enumerate() {
                assert_eq!(r[col].as_str().unwrap(), rows[i][j], "{q} row {i} {col}");
            }
        }
        let mut want: Vec<(String, String)> = ws
            .iter()
            .map(|w| {
                (
                    w.state.batch_number.clone(),
                    w.actual_g.normalize().to_string(),
                )
            })
            .collect();
        let ai = header.iter().position(|h| h == "actual").unwrap();
        let bi = header.iter().position(|h| h == "batch_number").unwrap();
        let mut got: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r[bi].clone(),
                    Decimal::from_str_exact(&r[ai])
                        .unwrap()
                        .normalize()
                        .to_string(),
                )
            })
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{q}");
    }
    // Page 2 continues page 1.
    let p1 = c.report("/api/reports/mass-checks").await;
    let p2 = c.report("/api/reports/mass-checks?page=2").await;
    let (_, rows) = c.csv("/api/reports/mass-checks/csv").await;
    assert_eq!(p2["rows"][0]["at"].as_str().unwrap(), rows[100][0]);
    assert_eq!(p1["rows"][99]["at"].as_str().unwrap(), rows[99][0]);

    // --- exceptions -------------------------------------------------------------------
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut decided: BTreeMap<String, usize> = BTreeMap::new();
    for (_, events, _) in &raw.batches {
        for rec in events {
            let k = match &rec.event {
                BatchEvent::FlagRaised {
                    kind: FlagKind::OutOfTolerance,
                    ..
                } => "out_of_tolerance",
                BatchEvent::FlagRaised {
                    kind: FlagKind::Manual,
                    ..
                } => "manual_flag",
                BatchEvent::FlagRaised {
                    kind: FlagKind::OcrMismatch,
                    ..
                } => "ocr_mismatch",
                BatchEvent::Overridden { .. } => "override",
                BatchEvent::Blocked { .. } => "blocked",
                BatchEvent::MassChecked {
                    source: MassSource::Manual,
                    ..
                } => "manual_entry",
                BatchEvent::FlagApproved { .. }
                | BatchEvent::FlagRejected { .. }
                | BatchEvent::Unblocked { .. } => {
                    *decided.entry(rec.actor.username.clone()).or_default() += 1;
                    continue;
                }
                _ => continue,
            };
            *kinds.entry(k.into()).or_default() += 1;
        }
    }
    let v = c.report("/api/reports/exceptions").await;
    let got: BTreeMap<String, usize> = v["breakdowns"]["by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["kind"].as_str().unwrap().to_string(),
                b["count"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    assert_eq!(got, kinds);
    assert_eq!(v["total"], kinds.values().sum::<usize>());
    let approvals: BTreeMap<String, usize> = v["breakdowns"]["by_decider"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["decided_by"].as_str().unwrap().to_string(),
                b["count"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    // Overrides are decided by the admin who made them.
    let mut want = decided.clone();
    if let Some(n) = kinds.get("override") {
        *want.entry("gen-admin".into()).or_default() += n;
    }
    assert_eq!(approvals, want);
    let v = c
        .report("/api/reports/exceptions?kind=manual_entry&station=casting")
        .await;
    let n = all
        .iter()
        .filter(|w| w.manual && w.station == "casting")
        .count();
    assert_eq!(v["total"], n);
    let (_, rows) = c
        .csv("/api/reports/exceptions/csv?kind=out_of_tolerance")
        .await;
    assert_eq!(rows.len(), kinds["out_of_tolerance"]);
    // OCR mismatches: counted in the summary, filterable, with who cleared them and why.
    let mismatches = kinds.get("ocr_mismatch").copied().unwrap_or(0);
    assert!(mismatches > 0, "the generated history has OCR mismatches");
    let summary = c.report("/api/reports/exceptions").await;
    assert_eq!(summary["summary"]["ocr_mismatches"], mismatches);
    let (header, rows) = c.csv("/api/reports/exceptions/csv?kind=ocr_mismatch").await;
    assert_eq!(rows.len(), mismatches);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut approved = 0;
    for r in &rows {
        assert_eq!(r[col("kind")], "ocr_mismatch");
        assert!(
            r[col("reason")].contains("the serial value stands"),
            "{r:?}"
        );
        // The newest may still wait for a supervisor when the history ends.
        match r[col("decision")].as_str() {
            "approved" => {
                approved += 1;
                assert!(r[col("decided_by")].starts_with("sup-"), "{r:?}");
                assert!(r[col("decision_reason")].contains("glare"), "{r:?}");
            }
            "open" => assert!(r[col("decided_by")].is_empty(), "{r:?}"),
            other => panic!("decision {other}: {r:?}"),
        }
    }
    assert!(approved > 0);

    // --- cycle times and WIP, from station visits replayed with the flows ----------------
    let mut visits: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut refining_gold1 = 0;
    let mut open: Vec<(&BatchState, Option<String>, Option<time::OffsetDateTime>)> = Vec::new();
    for (state, events, flow) in &raw.batches {
        let mut s = BatchState::from_created(&events[0]).unwrap();
        let mut at: Option<(String, time::OffsetDateTime)> = None;
        for rec in &events[1..] {
            s.apply(rec).unwrap();
            let here = match s.status {
                BatchStatus::Created | BatchStatus::Completed => None,
                _ => flow
                    .content
                    .step_at(s.cursor)
                    .map(|(st, _)| st.station_id.clone()),
            };
            if at.as_ref().map(|a| &a.0) != here.as_ref() {
                if let Some((st, since)) = at.take() {
                    if st == "refining" && s.flow_id == "gen_gold_refining" && s.flow_version == 1 {
                        refining_gold1 += 1;
                    }
                    visits
                        .entry(st)
                        .or_default()
                        .push((rec.at - since).whole_milliseconds() as i64);
                }
                at = here.map(|h| (h, rec.at));
            }
        }
        if state.status != BatchStatus::Completed {
            open.push((state, at.as_ref().map(|a| a.0.clone()), at.map(|a| a.1)));
        }
    }
    let v = c.report("/api/reports/cycle-times").await;
    for b in v["breakdowns"]["by_station"].as_array().unwrap() {
        let mut d = visits[b["station"].as_str().unwrap()].clone();
        d.sort_unstable();
        assert_eq!(b["visits"], d.len());
        assert_eq!(
            dec(&b["median_s"]),
            Decimal::new(nearest_rank(&d, 50), 3).normalize(),
            "{b}"
        );
        assert_eq!(
            dec(&b["p90_s"]),
            Decimal::new(nearest_rank(&d, 90), 3).normalize(),
            "{b}"
        );
    }
    assert_eq!(v["total"], visits.values().map(Vec::len).sum::<usize>());
    let v = c
        .report(
            "/api/reports/cycle-times?station=refining&flow_id=gen_gold_refining&flow_version=1",
        )
        .await;
    assert_eq!(v["total"], refining_gold1, "{}", v["summary"]);
    assert!(refining_gold1 > 0);

    let mut stuck_seen = 0;
    for hours in [1i64, 12, 48] {
        let v = c
            .report(&format!("/api/reports/wip?stuck_hours={hours}"))
            .await;
        let as_of = time::OffsetDateTime::parse(
            v["as_of"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(v["summary"]["unfinished"], open.len());
        assert_eq!(v["total"], open.len());
        let stuck = open
            .iter()
            .filter(|(_, _, since)| since.is_some_and(|t| t < as_of - time::Duration::hours(hours)))
            .count();
        assert_eq!(v["summary"]["stuck"], stuck, "{hours} h: {}", v["summary"]);
        let rows_stuck = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["stuck"] == "true")
            .count();
        assert_eq!(rows_stuck, stuck.min(100));
        stuck_seen += stuck;
    }
    assert!(stuck_seen > 0, "the generated history has batches waiting");
    let by_station = c.report("/api/reports/wip?station=refining").await;
    assert_eq!(
        by_station["total"],
        open.iter()
            .filter(|(_, st, _)| st.as_deref() == Some("refining"))
            .count()
    );
    let blocked = open
        .iter()
        .filter(|(s, _, _)| s.status == BatchStatus::Blocked)
        .count();
    let v = c.report("/api/reports/wip?status=blocked").await;
    assert_eq!(v["total"], blocked);

    // --- mass balance and weight list ----------------------------------------------------
    // Accepted weighing: the latest of its step when that step completes.
    let mut accepted: Vec<&Weighing<'_>> = Vec::new();
    for (state, events, _) in &raw.batches {
        for (i, rec) in events.iter().enumerate() {
            if let BatchEvent::StepCompleted {
                payload: None,
                step_index,
                ..
            } = &rec.event
            {
                let last = events[..i].iter().rev().find(|e| matches!(&e.event, BatchEvent::MassChecked { step_index: s, .. } if s == step_index)).unwrap();
                accepted.push(
                    all.iter()
                        .find(|w| w.state.batch_id == state.batch_id && w.rec.seq == last.seq)
                        .unwrap(),
                );
            }
        }
    }
    let mut per_batch: BTreeMap<uuid::Uuid, Vec<&Weighing<'_>>> = BTreeMap::new();
    for a in &accepted {
        per_batch.entry(a.state.batch_id).or_default().push(a);
    }
    for v in per_batch.values_mut() {
        v.sort_by_key(|w| w.rec.seq);
    }
    let first: Decimal = per_batch.values().map(|v| v[0].actual_g).sum();
    let last: Decimal = per_batch.values().map(|v| v[v.len() - 1].actual_g).sum();
    let v = c.report("/api/reports/mass-balance").await;
    assert_eq!(v["summary"]["batches"], per_batch.len());
    assert_eq!(v["summary"]["weighings"], accepted.len());
    assert_eq!(dec(&v["summary"]["first_gross_g"]), first.normalize());
    assert_eq!(dec(&v["summary"]["change_g"]), (last - first).normalize());
    let (header, rows) = c.csv("/api/reports/mass-balance/csv").await;
    assert_eq!(rows.len(), accepted.len());
    let ci = header.iter().position(|h| h == "change_g").unwrap();
    let csv_change: Decimal = rows
        .iter()
        .filter(|r| !r[ci].is_empty())
        .map(|r| Decimal::from_str_exact(&r[ci]).unwrap())
        .sum();
    assert_eq!(csv_change.normalize(), (last - first).normalize());
    let v = c.report("/api/reports/mass-balance?pipeline=silver").await;
    assert_eq!(
        v["summary"]["batches"],
        per_batch
            .values()
            .filter(|v| v[0].state.pipeline == "silver")
            .count()
    );

    let ozt = Decimal::from_str_exact("31.1034768").unwrap();
    let mut fine_total = Decimal::ZERO;
    let mut bars = 0;
    for ws in per_batch.values() {
        if ws[0].state.status != BatchStatus::Completed {
            continue;
        }
        let Some(f) = ws
            .iter()
            .rev()
            .find_map(|w| w.note.and_then(|n| n.strip_prefix("fineness=")))
        else {
            continue;
        };
        let gross = ws[ws.len() - 1].actual_g;
        fine_total += (gross * Decimal::from_str_exact(f).unwrap() / Decimal::ONE_THOUSAND / ozt)
            .round_dp_with_strategy(3, RoundingStrategy::ToZero);
        bars += 1;
    }
    let v = c.report("/api/reports/weight-list").await;
    assert_eq!(v["summary"]["bars"], bars);
    assert_eq!(dec(&v["summary"]["fine_ozt"]), fine_total);
    let (header, rows) = c.csv("/api/reports/weight-list/csv").await;
    assert_eq!(rows.len(), bars);
    let fi = header.iter().position(|h| h == "fine_ozt").unwrap();
    assert!(
        rows.iter()
            .all(|r| r[fi].split('.').nth(1).map(str::len) == Some(3)),
        "ozt to 0.001"
    );

    // --- charts ------------------------------------------------------------------------
    for name in [
        "mass-checks",
        "wip",
        "cycle-times",
        "exceptions",
        "mass-balance",
        "weight-list",
    ] {
        let res = w
            .app
            .client
            .get(format!("{}/api/reports/{name}/chart.svg", w.app.base))
            .bearer_auth(&w.analyst)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert_eq!(res.headers()["content-type"], "image/svg+xml");
        assert!(res.text().await.unwrap().contains("<svg"), "{name}");
    }
}
