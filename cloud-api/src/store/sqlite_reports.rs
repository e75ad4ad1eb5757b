//! Report queries of the SQLite backend ([`ReportStore`]) over the read model written by
//! `sqlite_readmodel`. Summaries come from the daily rollup or grouped SQL; detail rows are
//! paged by offset (screens) or by keyset (exports, constant memory per page).

use async_trait::async_trait;
use rusqlite::params_from_iter;
use time::OffsetDateTime;

use super::sqlite::{backend, SqliteStore};
use super::sqlite_query::*;
use super::StoreResult;
use crate::reports::csv::CsvWriter;
use crate::reports::rows::MassCheckCells;
use crate::reports::*;

#[async_trait]
impl ReportStore for SqliteStore {
    async fn report_generation(&self) -> StoreResult<u64> {
        self.read(|c| {
            c.query_row(
                "SELECT COALESCE(MAX(rowid), 0) FROM batch_events",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
    }

    async fn mass_check_groups(&self, f: &ReportFilter) -> StoreResult<Vec<MassCheckGroup>> {
        let w = mass_check_where(f, true);
        self.read(move |c| {
            let sql = format!(
                "SELECT station, operator, within, SUM(n), SUM(n_pct), SUM(sum_pct_e4), SUM(sum_abs_pct_e4), SUM(sum_variance_e4)
                 FROM rm_mass_daily WHERE {} GROUP BY station, operator, within ORDER BY station, operator, within",
                w.sql()
            );
            query(c, &sql, &w.args, |r| {
                Ok(MassCheckGroup {
                    station: r.get(0)?,
                    operator: r.get(1)?,
                    within: r.get::<_, i64>(2)? != 0,
                    count: r.get::<_, i64>(3)? as u64,
                    pct_count: r.get::<_, i64>(4)? as u64,
                    sum_pct_e4: r.get(5)?,
                    sum_abs_pct_e4: r.get(6)?,
                    sum_variance_e4: r.get(7)?,
                })
            })
        })
        .await
    }

    async fn mass_check_rows(
        &self,
        f: &ReportFilter,
        win: Window,
    ) -> StoreResult<Rows<MassCheckRow>> {
        let mut w = mass_check_where(f, false);
        self.read(move |c| {
            let (tail, limit) = w.window(&win, "at", "id", "<");
            let sql = format!(
                "SELECT id, at, batch_id, batch_number, pipeline, flow_id, flow_version, station, step, operator,
                   expected, expected_unit, actual, actual_unit, variance, variance_pct, within, source, fineness_permille
                 FROM rm_mass_checks WHERE {} ORDER BY at DESC, id DESC {tail}",
                w.sql()
            );
            let raw = query(c, &sql, &w.args, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    MassCheckRow {
                        id: r.get(0)?,
                        at: OffsetDateTime::UNIX_EPOCH,
                        batch_id: r.get(2)?,
                        batch_number: r.get(3)?,
                        pipeline: r.get(4)?,
                        flow_id: r.get(5)?,
                        flow_version: r.get(6)?,
                        station: r.get(7)?,
                        step: r.get(8)?,
                        operator: r.get(9)?,
                        expected: r.get(10)?,
                        expected_unit: r.get(11)?,
                        actual: r.get(12)?,
                        actual_unit: r.get(13)?,
                        variance: r.get(14)?,
                        variance_pct: r.get(15)?,
                        within: r.get::<_, i64>(16)? != 0,
                        source: r.get(17)?,
                        fineness_permille: r.get(18)?,
                    },
                ))
            })?;
            let rows = raw
                .into_iter()
                .map(|(id, at, mut row)| {
                    row.at = t(&at)?;
                    Ok((row, Cursor { key: at, id }))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(rows_with_cursor(rows, limit))
        })
        .await
    }

    async fn mass_check_csv(
        &self,
        f: &ReportFilter,
        win: Window,
        through: Option<Cursor>,
        mut out: CsvWriter,
    ) -> StoreResult<(CsvWriter, Option<Cursor>)> {
        let mut w = mass_check_where(f, false);
        self.read(move |c| {
            if let Some(end) = through {
                w.args.push(end.key.into());
                w.args.push(end.id.into());
                let n = w.args.len();
                w.clauses.push(format!("(at, id) >= (?{}, ?{n})", n - 1));
            }
            let (tail, limit) = w.window(&win, "at", "id", "<");
            let sql = format!(
                "SELECT id, at, batch_number, pipeline, flow_id, flow_version, station, step, operator,
                   expected, expected_unit, actual, actual_unit, variance, variance_pct, within, source, fineness_permille
                 FROM rm_mass_checks WHERE {} ORDER BY at DESC, id DESC {tail}",
                w.sql()
            );
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let mut rows = stmt
                .query(params_from_iter(w.args.iter()))
                .map_err(backend)?;
            let (mut n, mut last) = (0u32, None);
            let mut at = String::with_capacity(32);
            while let Some(r) = rows.next().map_err(backend)? {
                let stored_at = text(r, 1)?;
                at.clear();
                stored_ts_as_rfc3339(stored_at, &mut at)?;
                MassCheckCells {
                    at: &at,
                    batch_number: text(r, 2)?,
                    pipeline: text(r, 3)?,
                    flow_id: text(r, 4)?,
                    flow_version: r.get(5).map_err(backend)?,
                    station: text(r, 6)?,
                    step: text(r, 7)?,
                    operator: text(r, 8)?,
                    expected: text(r, 9)?,
                    expected_unit: text(r, 10)?,
                    actual: text(r, 11)?,
                    actual_unit: text(r, 12)?,
                    variance: text(r, 13)?,
                    variance_pct: opt_text(r, 14)?,
                    within: r.get::<_, i64>(15).map_err(backend)? != 0,
                    source: text(r, 16)?,
                    fineness_permille: opt_text(r, 17)?,
                }
                .write(&mut out);
                n += 1;
                if n == limit {
                    last = Some(Cursor {
                        key: stored_at.to_owned(),
                        id: r.get(0).map_err(backend)?,
                    });
                }
            }
            Ok((out, last))
        })
        .await
    }

    async fn mass_check_page_end(
        &self,
        f: &ReportFilter,
        cursor: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<PageEnd> {
        let mut w = mass_check_where(f, false);
        if limit == 0 {
            return Ok(PageEnd::Last);
        }
        self.read(move |c| {
            // The same WHERE and order as `mass_check_csv`; with no filter (or one the
            // indexes cover) this walks the (at, id) index without touching the rows.
            w.window(&Window::After { cursor, limit }, "at", "id", "<");
            let sql = format!(
                "SELECT at, id FROM rm_mass_checks WHERE {} ORDER BY at DESC, id DESC LIMIT 1 OFFSET {}",
                w.sql(),
                limit - 1
            );
            let end = query(c, &sql, &w.args, |r| {
                Ok(Cursor {
                    key: r.get(0)?,
                    id: r.get(1)?,
                })
            })?;
            Ok(end.into_iter().next().map_or(PageEnd::Last, PageEnd::At))
        })
        .await
    }

    async fn wip_groups(
        &self,
        f: &ReportFilter,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<WipGroup>> {
        let mut w = wip_where(f);
        let since = stuck_since(f, now);
        self.read(move |c| {
            w.args.push(since.into());
            let n = w.args.len();
            let sql = format!(
                "SELECT b.current_station, b.status, COUNT(*), SUM(v.entered_at < ?{n}), MIN(v.entered_at)
                 FROM batches b LEFT JOIN rm_station_visits v ON v.batch_id = b.id AND v.left_at IS NULL
                 WHERE {} GROUP BY b.current_station, b.status ORDER BY b.current_station, b.status",
                w.sql()
            );
            let raw = query(c, &sql, &w.args, |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?;
            raw.into_iter()
                .map(|(station, status, count, stuck, oldest)| {
                    Ok(WipGroup {
                        station,
                        status,
                        count: count as u64,
                        stuck: stuck.unwrap_or(0) as u64,
                        oldest_since: opt_t(oldest)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn wip_rows(
        &self,
        f: &ReportFilter,
        now: OffsetDateTime,
        win: Window,
    ) -> StoreResult<Rows<WipRow>> {
        let mut w = wip_where(f);
        let since = stuck_since(f, now);
        self.read(move |c| {
            let key = "COALESCE(v.entered_at, '9999')";
            let (tail, limit) = w.window(&win, key, "b.rowid", ">");
            w.args.push(since.into());
            let n = w.args.len();
            let sql = format!(
                "SELECT b.rowid, b.id, b.batch_number, b.pipeline, b.flow_id, b.flow_version, b.status, b.current_station,
                   b.current_step, b.created_at, v.entered_at, COALESCE(v.entered_at < ?{n}, 0), {key}
                 FROM batches b LEFT JOIN rm_station_visits v ON v.batch_id = b.id AND v.left_at IS NULL
                 WHERE {} ORDER BY {key}, b.rowid {tail}",
                w.sql()
            );
            let raw = query(c, &sql, &w.args, |r| {
                Ok((
                    WipRow {
                        id: r.get(0)?,
                        batch_id: r.get(1)?,
                        batch_number: r.get(2)?,
                        pipeline: r.get(3)?,
                        flow_id: r.get(4)?,
                        flow_version: r.get(5)?,
                        status: r.get(6)?,
                        station: r.get(7)?,
                        step: r.get(8)?,
                        created_at: OffsetDateTime::UNIX_EPOCH,
                        at_station_since: None,
                        stuck: r.get::<_, i64>(11)? != 0,
                    },
                    r.get::<_, String>(9)?,
                    r.get::<_, Option<String>>(10)?,
                    r.get::<_, String>(12)?,
                ))
            })?;
            let rows = raw
                .into_iter()
                .map(|(mut row, created, since, key)| {
                    row.created_at = t(&created)?;
                    row.at_station_since = opt_t(since)?;
                    let id = row.id;
                    Ok((row, Cursor { key, id }))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(rows_with_cursor(rows, limit))
        })
        .await
    }

    async fn duration_groups(&self, f: &ReportFilter) -> StoreResult<Vec<DurationGroup>> {
        let w = visit_where(f);
        self.read(move |c| {
            let sql = format!(
                "SELECT station, flow_id, flow_version, duration_ms FROM rm_station_visits
                 WHERE {} ORDER BY station, flow_id, flow_version, duration_ms",
                w.sql()
            );
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let mut rows = stmt
                .query(params_from_iter(w.args.iter()))
                .map_err(backend)?;
            let mut out: Vec<DurationGroup> = Vec::new();
            while let Some(r) = rows.next().map_err(backend)? {
                let station: String = r.get(0).map_err(backend)?;
                let flow_id: String = r.get(1).map_err(backend)?;
                let flow_version: u32 = r.get(2).map_err(backend)?;
                let ms: i64 = r.get(3).map_err(backend)?;
                match out.last_mut() {
                    Some(g)
                        if g.station == station
                            && g.flow_id == flow_id
                            && g.flow_version == flow_version =>
                    {
                        g.durations_ms.push(ms)
                    }
                    _ => out.push(DurationGroup {
                        station,
                        flow_id,
                        flow_version,
                        durations_ms: vec![ms],
                    }),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn visit_rows(&self, f: &ReportFilter, win: Window) -> StoreResult<Rows<VisitRow>> {
        let mut w = visit_where(f);
        self.read(move |c| {
            let (tail, limit) = w.window(&win, "left_at", "id", "<");
            let sql = format!(
                "SELECT id, batch_id, batch_number, pipeline, flow_id, flow_version, station, entered_at, left_at, duration_ms
                 FROM rm_station_visits WHERE {} ORDER BY left_at DESC, id DESC {tail}",
                w.sql()
            );
            let raw = query(c, &sql, &w.args, |r| {
                Ok((
                    VisitRow {
                        id: r.get(0)?,
                        batch_id: r.get(1)?,
                        batch_number: r.get(2)?,
                        pipeline: r.get(3)?,
                        flow_id: r.get(4)?,
                        flow_version: r.get(5)?,
                        station: r.get(6)?,
                        entered_at: OffsetDateTime::UNIX_EPOCH,
                        left_at: OffsetDateTime::UNIX_EPOCH,
                        duration_ms: r.get(9)?,
                    },
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })?;
            let rows = raw
                .into_iter()
                .map(|(mut row, entered, left)| {
                    row.entered_at = t(&entered)?;
                    row.left_at = t(&left)?;
                    let id = row.id;
                    Ok((row, Cursor { key: left, id }))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(rows_with_cursor(rows, limit))
        })
        .await
    }

    async fn exception_groups(&self, f: &ReportFilter) -> StoreResult<Vec<ExceptionGroup>> {
        let w = exception_where(f);
        self.read(move |c| {
            let sql = format!(
                "SELECT kind, station, decision, decided_by, COUNT(*) FROM rm_exceptions WHERE {}
                 GROUP BY kind, station, decision, decided_by ORDER BY kind, station, decision, decided_by",
                w.sql()
            );
            query(c, &sql, &w.args, |r| {
                Ok(ExceptionGroup {
                    kind: r.get(0)?,
                    station: r.get(1)?,
                    decision: r.get(2)?,
                    decided_by: r.get(3)?,
                    count: r.get::<_, i64>(4)? as u64,
                })
            })
        })
        .await
    }

    async fn exception_rows(
        &self,
        f: &ReportFilter,
        win: Window,
    ) -> StoreResult<Rows<ExceptionRow>> {
        let mut w = exception_where(f);
        self.read(move |c| {
            let (tail, limit) = w.window(&win, "raised_at", "id", "<");
            let sql = format!(
                "SELECT id, batch_id, batch_number, pipeline, flow_id, flow_version, seq, kind, station, step, raised_by,
                   raised_at, reason, decision, decided_by, decided_at, decision_reason
                 FROM rm_exceptions WHERE {} ORDER BY raised_at DESC, id DESC {tail}",
                w.sql()
            );
            let raw = query(c, &sql, &w.args, |r| {
                Ok((
                    ExceptionRow {
                        id: r.get(0)?,
                        batch_id: r.get(1)?,
                        batch_number: r.get(2)?,
                        pipeline: r.get(3)?,
                        flow_id: r.get(4)?,
                        flow_version: r.get(5)?,
                        seq: r.get::<_, i64>(6)? as u64,
                        kind: r.get(7)?,
                        station: r.get(8)?,
                        step: r.get(9)?,
                        raised_by: r.get(10)?,
                        raised_at: OffsetDateTime::UNIX_EPOCH,
                        reason: r.get(12)?,
                        decision: r.get(13)?,
                        decided_by: r.get(14)?,
                        decided_at: None,
                        decision_reason: r.get(16)?,
                    },
                    r.get::<_, String>(11)?,
                    r.get::<_, Option<String>>(15)?,
                ))
            })?;
            let rows = raw
                .into_iter()
                .map(|(mut row, raised, decided)| {
                    row.raised_at = t(&raised)?;
                    row.decided_at = opt_t(decided)?;
                    let id = row.id;
                    Ok((row, Cursor { key: raised, id }))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(rows_with_cursor(rows, limit))
        })
        .await
    }

    async fn balance_groups(
        &self,
        f: &ReportFilter,
    ) -> StoreResult<(BalanceTotals, Vec<BalanceGroup>)> {
        let w = balance_where(f, "");
        self.read(move |c| {
            let groups = query(
                c,
                &format!(
                    "WITH w AS (SELECT station, actual_e4, LAG(actual_e4) OVER (PARTITION BY batch_id ORDER BY seq) AS prev
                                FROM rm_mass_checks WHERE {})
                     SELECT station, COUNT(*), COUNT(prev), COALESCE(SUM(actual_e4 - prev), 0), COALESCE(SUM(prev), 0)
                     FROM w GROUP BY station ORDER BY station",
                    w.sql()
                ),
                &w.args,
                |r| {
                    Ok(BalanceGroup {
                        station: r.get(0)?,
                        weighings: r.get::<_, i64>(1)? as u64,
                        transitions: r.get::<_, i64>(2)? as u64,
                        delta_e4: r.get(3)?,
                        previous_e4: r.get(4)?,
                    })
                },
            )?;
            let totals = query(
                c,
                &format!(
                    "WITH w AS (SELECT batch_id, actual_e4,
                                  ROW_NUMBER() OVER (PARTITION BY batch_id ORDER BY seq) AS rn,
                                  ROW_NUMBER() OVER (PARTITION BY batch_id ORDER BY seq DESC) AS rd
                                FROM rm_mass_checks WHERE {})
                     SELECT SUM(rn = 1), COUNT(*), COALESCE(SUM(CASE WHEN rn = 1 THEN actual_e4 END), 0),
                            COALESCE(SUM(CASE WHEN rd = 1 THEN actual_e4 END), 0) FROM w",
                    w.sql()
                ),
                &w.args,
                |r| {
                    Ok(BalanceTotals {
                        batches: r.get::<_, Option<i64>>(0)?.unwrap_or(0) as u64,
                        weighings: r.get::<_, i64>(1)? as u64,
                        first_e4: r.get(2)?,
                        last_e4: r.get(3)?,
                    })
                },
            )?
            .pop()
            .unwrap_or_default();
            Ok((totals, groups))
        })
        .await
    }

    async fn balance_rows(&self, f: &ReportFilter, win: Window) -> StoreResult<Rows<BalanceRow>> {
        // Rows in (batch, seq) order; the row before each one (fetched one early) gives the
        // previous weighing, so a page costs its own size whatever its position.
        let mut w = balance_where(f, "");
        let (tail, limit, skip_first) = match &win {
            Window::Offset { offset, limit } if *offset > 0 => (
                format!("LIMIT {} OFFSET {}", limit + 1, offset - 1),
                *limit,
                true,
            ),
            Window::Offset { limit, .. } => (format!("LIMIT {limit}"), *limit, false),
            Window::After {
                cursor: None,
                limit,
            } => (format!("LIMIT {limit}"), *limit, false),
            Window::After {
                cursor: Some(c),
                limit,
            } => {
                let (created, batch) = c.key.split_once('|').unwrap_or((c.key.as_str(), ""));
                w.args.push(created.to_string().into());
                w.args.push(batch.to_string().into());
                w.args.push(c.id.into());
                let n = w.args.len();
                w.clauses.push(format!(
                    "(batch_created_at, batch_id, seq) >= (?{}, ?{}, ?{n})",
                    n - 2,
                    n - 1
                ));
                (format!("LIMIT {}", limit + 1), *limit, true)
            }
        };
        self.read(move |c| {
            let sql = format!(
                "SELECT id, batch_id, batch_number, pipeline, seq, station, step, at, actual_e4, fineness_permille, batch_created_at
                 FROM rm_mass_checks WHERE {} ORDER BY batch_created_at, batch_id, seq {tail}",
                w.sql()
            );
            let raw = query(c, &sql, &w.args, |r| {
                Ok((
                    BalanceRow {
                        id: r.get(0)?,
                        batch_id: r.get(1)?,
                        batch_number: r.get(2)?,
                        pipeline: r.get(3)?,
                        seq: r.get::<_, i64>(4)? as u64,
                        station: r.get(5)?,
                        step: r.get(6)?,
                        at: OffsetDateTime::UNIX_EPOCH,
                        actual_e4: r.get(8)?,
                        previous_e4: None,
                        previous_station: None,
                        fineness_permille: r.get(9)?,
                    },
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(10)?,
                ))
            })?;
            let mut prev: Option<(String, i64, String)> = None;
            let mut rows = Vec::with_capacity(raw.len());
            for (i, (mut row, at, created)) in raw.into_iter().enumerate() {
                row.at = t(&at)?;
                if let Some((batch, e4, station)) = &prev {
                    if *batch == row.batch_id {
                        row.previous_e4 = Some(*e4);
                        row.previous_station = Some(station.clone());
                    }
                }
                prev = Some((row.batch_id.clone(), row.actual_e4, row.station.clone()));
                if skip_first && i == 0 {
                    continue;
                }
                let cursor = Cursor {
                    key: format!("{created}|{}", row.batch_id),
                    id: row.seq as i64,
                };
                rows.push((row, cursor));
            }
            rows.truncate(limit as usize);
            Ok(rows_with_cursor(rows, limit))
        })
        .await
    }

    async fn weight_list_rows(
        &self,
        f: &ReportFilter,
        win: Window,
    ) -> StoreResult<Rows<WeightListRow>> {
        let mut w = Where::default();
        w.clauses.push("b.status = 'completed'".into());
        w.days("b.created_at", f);
        w.opt_str("b.pipeline", &f.pipeline);
        w.flow("b.", f);
        self.read(move |c| {
            let (tail, limit) = w.window(&win, "b.created_at", "b.rowid", ">");
            let sql = format!(
                "SELECT b.rowid, b.id, b.batch_number, b.pipeline, b.status, m.at, m.actual_e4, fin.fineness_permille, b.created_at
                 FROM batches b
                 JOIN rm_mass_checks m ON m.id = (SELECT id FROM rm_mass_checks WHERE batch_id = b.id AND accepted = 1 ORDER BY seq DESC LIMIT 1)
                 JOIN rm_mass_checks fin ON fin.id = (SELECT id FROM rm_mass_checks WHERE batch_id = b.id AND accepted = 1
                                                      AND fineness_permille IS NOT NULL ORDER BY seq DESC LIMIT 1)
                 WHERE {} ORDER BY b.created_at, b.rowid {tail}",
                w.sql()
            );
            let raw = query(c, &sql, &w.args, |r| {
                Ok((
                    WeightListRow {
                        id: r.get(0)?,
                        batch_id: r.get(1)?,
                        batch_number: r.get(2)?,
                        pipeline: r.get(3)?,
                        status: r.get(4)?,
                        weighed_at: OffsetDateTime::UNIX_EPOCH,
                        gross_e4: r.get(6)?,
                        fineness_permille: r.get(7)?,
                    },
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(8)?,
                ))
            })?;
            let rows = raw
                .into_iter()
                .map(|(mut row, at, key)| {
                    row.weighed_at = t(&at)?;
                    let id = row.id;
                    Ok((row, Cursor { key, id }))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(rows_with_cursor(rows, limit))
        })
        .await
    }
}
