//! The device health report: per edge device, the readings it delivered, the messages the
//! ingest pipeline refused from it (by reason), and how long it was offline, in a window.
//!
//! A plant has tens to hundreds of devices, so the rows are computed in memory from a few
//! grouped store queries (readings per device, rejections per device and reason, the
//! online/offline transitions) rather than kept in a read model. Offline time counts only
//! what is known: from a transition to offline until the next transition online (or the end
//! of the window, or now), clipped to the window; before a device's first transition its
//! state is unknown and not counted.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::{Cursor, ReportFilter, Window};
use crate::store::devices::{Device, DeviceStore, PresenceChange};
use crate::store::StoreResult;

/// One device's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceHealthRow {
    pub device_id: String,
    pub name: String,
    pub station: String,
    pub state: &'static str,
    /// From the last status message (or will) the device's broker session left.
    pub online: Option<bool>,
    pub last_seen: Option<OffsetDateTime>,
    pub readings: u64,
    pub unbound: u64,
    pub last_reading_at: Option<OffsetDateTime>,
    pub rejected: u64,
    /// Rejections by reason code, by code.
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub offline_s: i64,
    /// Seconds of the window the report covers for this device (its end minus its start,
    /// the start being the window's or, without one, the device's creation).
    pub window_s: i64,
}

/// The whole report: rows by device id, the rejections no registered device can be blamed
/// for (unknown devices, malformed topics), and the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceHealth {
    pub rows: Vec<DeviceHealthRow>,
    pub unattributed: BTreeMap<String, u64>,
    pub start: Option<OffsetDateTime>,
    pub end: OffsetDateTime,
}

/// `[start, end)` of the filter's days (UTC, `to` inclusive), the end no later than `now`.
pub fn window(f: &ReportFilter, now: OffsetDateTime) -> (Option<OffsetDateTime>, OffsetDateTime) {
    let start = f.from.map(|d| d.midnight().assume_utc());
    let end =
        f.to.map(|d| d.midnight().assume_utc() + Duration::days(1))
            .map_or(now, |e| e.min(now));
    (start, end)
}

/// Seconds offline within `[start, end)`, from one device's transitions in time order.
pub fn offline_seconds(
    changes: &[PresenceChange],
    start: Option<OffsetDateTime>,
    end: OffsetDateTime,
) -> i64 {
    let clip = |a: OffsetDateTime, b: OffsetDateTime| -> i64 {
        let a = start.map_or(a, |s| a.max(s));
        let b = b.min(end);
        if b > a {
            (b - a).whole_seconds()
        } else {
            0
        }
    };
    let mut total = 0;
    let mut offline_since: Option<OffsetDateTime> = None;
    for c in changes {
        if c.at >= end {
            break;
        }
        match (c.online, offline_since) {
            (true, Some(since)) => {
                total += clip(since, c.at);
                offline_since = None;
            }
            (false, None) => offline_since = Some(c.at),
            _ => {}
        }
    }
    if let Some(since) = offline_since {
        total += clip(since, end);
    }
    total
}

/// Reads what the report needs and computes every row.
pub async fn compute<S: DeviceStore + ?Sized>(
    store: &S,
    f: &ReportFilter,
    now: OffsetDateTime,
) -> StoreResult<DeviceHealth> {
    let (start, end) = window(f, now);
    let mut devices: Vec<Device> = store.list_devices().await?;
    devices.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let readings: BTreeMap<String, (u64, u64)> = store
        .reading_counts(start, Some(end))
        .await?
        .into_iter()
        .map(|c| (c.device_id, (c.readings, c.unbound)))
        .collect();
    let last_reading: BTreeMap<String, Option<OffsetDateTime>> = store
        .device_counts()
        .await?
        .into_iter()
        .map(|c| (c.device_id, c.last_reading_at))
        .collect();
    let presence: BTreeMap<String, (bool, OffsetDateTime)> = store
        .presences()
        .await?
        .into_iter()
        .map(|p| {
            let online = p.status.presence == metcon_shared::topic::Presence::Online;
            (p.device_id, (online, p.received_at))
        })
        .collect();
    let mut changes: BTreeMap<String, Vec<PresenceChange>> = BTreeMap::new();
    for c in store.presence_changes(None, Some(end)).await? {
        changes.entry(c.device_id.clone()).or_default().push(c);
    }
    let mut rejected: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut unattributed: BTreeMap<String, u64> = BTreeMap::new();
    let known: std::collections::BTreeSet<&str> = devices.iter().map(|d| d.id.as_str()).collect();
    for r in store.rejection_counts(start, Some(end)).await? {
        match r.device_id {
            Some(id) if known.contains(id.as_str()) => {
                *rejected.entry(id).or_default().entry(r.reason).or_default() += r.count;
            }
            _ => *unattributed.entry(r.reason).or_default() += r.count,
        }
    }
    let rows = devices
        .into_iter()
        .filter(|d| f.station.as_deref().is_none_or(|s| s == d.station_id))
        .map(|d| {
            let id = d.id.to_string();
            let (readings, unbound) = readings.get(&id).copied().unwrap_or((0, 0));
            let by_reason = rejected.remove(&id).unwrap_or_default();
            let from = start.unwrap_or(d.created_at).max(d.created_at);
            let window_s = if end > from {
                (end - from).whole_seconds()
            } else {
                0
            };
            let offline_s = offline_seconds(
                changes.get(&id).map(Vec::as_slice).unwrap_or(&[]),
                Some(from),
                end,
            );
            DeviceHealthRow {
                name: d.name,
                station: d.station_id,
                state: d.state.as_str(),
                online: presence.get(&id).map(|p| p.0),
                last_seen: presence.get(&id).map(|p| p.1),
                readings,
                unbound,
                last_reading_at: last_reading.get(&id).copied().flatten(),
                rejected: by_reason.values().sum(),
                rejected_by_reason: by_reason,
                offline_s,
                window_s,
                device_id: id,
            }
        })
        .collect();
    Ok(DeviceHealth {
        rows,
        unattributed,
        start,
        end,
    })
}

/// Offline share of the window in percent, to two decimals (exact integer arithmetic).
pub fn offline_pct(offline_s: i64, window_s: i64) -> Option<rust_decimal::Decimal> {
    if window_s <= 0 {
        return None;
    }
    let pct = rust_decimal::Decimal::from(offline_s * 100) / rust_decimal::Decimal::from(window_s);
    Some(pct.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero))
}

/// Summary and breakdowns (by station, by rejection reason) of a computed report.
pub fn parts(h: &DeviceHealth) -> (Value, Value, u64) {
    let mut by_station: BTreeMap<&str, (u64, u64, u64, i64)> = BTreeMap::new();
    let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &h.rows {
        let e = by_station.entry(&r.station).or_default();
        e.0 += 1;
        e.1 += r.readings;
        e.2 += r.rejected;
        e.3 += r.offline_s;
        for (reason, n) in &r.rejected_by_reason {
            *by_reason.entry(reason).or_default() += n;
        }
    }
    for (reason, n) in &h.unattributed {
        *by_reason.entry(reason).or_default() += n;
    }
    let readings: u64 = h.rows.iter().map(|r| r.readings).sum();
    let rejected: u64 = h.rows.iter().map(|r| r.rejected).sum();
    let unattributed: u64 = h.unattributed.values().sum();
    let summary = json!({
        "devices": h.rows.len(),
        "online": h.rows.iter().filter(|r| r.online == Some(true)).count(),
        "readings": readings,
        "unbound": h.rows.iter().map(|r| r.unbound).sum::<u64>(),
        "rejected": rejected + unattributed,
        "rejected_unattributed": unattributed,
        "offline_s": h.rows.iter().map(|r| r.offline_s).sum::<i64>(),
        "window_from": h.start.map(super::rows::rfc3339),
        "window_to": super::rows::rfc3339(h.end),
    });
    let breakdowns = json!({
        "by_station": by_station.iter().map(|(s, (n, readings, rejected, off))| json!({
            "station": s, "devices": n, "readings": readings, "rejected": rejected, "offline_s": off,
        })).collect::<Vec<_>>(),
        "by_reason": by_reason.iter().map(|(reason, n)| json!({ "reason": reason, "count": n }))
            .collect::<Vec<_>>(),
    });
    (summary, breakdowns, h.rows.len() as u64)
}

/// The cells of one row, in [`super::rows::columns`] order.
pub fn cells(r: &DeviceHealthRow) -> Vec<String> {
    let t = |v: Option<OffsetDateTime>| v.map(super::rows::rfc3339).unwrap_or_default();
    vec![
        r.device_id.clone(),
        r.name.clone(),
        r.station.clone(),
        r.state.to_string(),
        match r.online {
            Some(true) => "online".into(),
            Some(false) => "offline".into(),
            None => "unknown".into(),
        },
        t(r.last_seen),
        r.readings.to_string(),
        r.unbound.to_string(),
        t(r.last_reading_at),
        r.rejected.to_string(),
        r.rejected_by_reason
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; "),
        r.offline_s.to_string(),
        offline_pct(r.offline_s, r.window_s)
            .map(|p| p.to_string())
            .unwrap_or_default(),
    ]
}

/// One window of rows (by device id) and the cursor after it.
pub fn page(h: &DeviceHealth, w: Window) -> (Vec<Vec<String>>, Option<Cursor>) {
    let (skip, after, limit) = match w {
        Window::Offset { offset, limit } => (offset as usize, None, limit as usize),
        Window::After { cursor, limit } => (0, cursor.map(|c| c.key), limit as usize),
    };
    let rows: Vec<&DeviceHealthRow> = h
        .rows
        .iter()
        .filter(|r| after.as_deref().is_none_or(|a| r.device_id.as_str() > a))
        .skip(skip)
        .take(limit)
        .collect();
    let next = (rows.len() == limit)
        .then(|| rows.last())
        .flatten()
        .map(|r| Cursor {
            key: r.device_id.clone(),
            id: 0,
        });
    (rows.into_iter().map(cells).collect(), next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn ch(online: bool, at: OffsetDateTime) -> PresenceChange {
        PresenceChange {
            device_id: "d".into(),
            online,
            at,
        }
    }

    const T: OffsetDateTime = datetime!(2026-03-02 00:00 UTC);

    #[test]
    fn offline_time_is_clipped_to_the_window() {
        let h = Duration::hours(1);
        let changes = [
            ch(true, T - h),
            ch(false, T + h),
            ch(true, T + 3 * h),
            ch(false, T + 10 * h),
        ];
        // Window [T+2h, T+12h): offline 2h..3h (1 h) and 10h..12h (2 h).
        assert_eq!(
            offline_seconds(&changes, Some(T + 2 * h), T + 12 * h),
            3 * 3600
        );
        // No start: every known offline span up to the end.
        assert_eq!(offline_seconds(&changes, None, T + 12 * h), 4 * 3600);
        // A window that ends before the last transition.
        assert_eq!(offline_seconds(&changes, Some(T), T + 5 * h), 2 * 3600);
    }

    #[test]
    fn unknown_state_and_repeated_states_count_nothing_extra() {
        let h = Duration::hours(1);
        assert_eq!(offline_seconds(&[], Some(T), T + h), 0);
        // Offline twice in a row (a will, then a status) counts from the first.
        let changes = [ch(false, T), ch(false, T + h), ch(true, T + 2 * h)];
        assert_eq!(offline_seconds(&changes, None, T + 5 * h), 2 * 3600);
        // Only online: nothing.
        assert_eq!(offline_seconds(&[ch(true, T)], None, T + h), 0);
    }

    #[test]
    fn offline_share_is_exact_to_two_decimals() {
        assert_eq!(
            offline_pct(1, 3).map(|d| d.to_string()),
            Some("33.33".into())
        );
        assert_eq!(
            offline_pct(2, 3).map(|d| d.to_string()),
            Some("66.67".into())
        );
        assert_eq!(offline_pct(5, 0), None);
    }
}
