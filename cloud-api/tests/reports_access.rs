//! Analytics as users meet it: a live mass check shows in the reports at once (the cache is
//! invalidated by the new events), a crafted note cannot become a spreadsheet formula in the
//! CSV, only analysts and admins read reports and export, and bad filters are refused.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::World;

fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

#[tokio::test]
async fn a_live_mass_check_shows_at_once_and_only_analysts_and_admins_read_reports() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let before = w.app.get("/api/reports/mass-checks", &w.analyst).await.1;
    assert_eq!(before["total"], 0);
    let id = w.started_batch().await;
    let (s, _) = w
        .app
        .post(
            &format!("/api/batches/{id}/steps/receiving-inspect/complete"),
            &w.operator,
            json!({ "payload": { "type": "instruction", "acknowledged": true } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = w
        .app
        .post(
            &format!("/api/batches/{id}/steps/receiving-weigh/mass-check"),
            &w.operator,
            json!({ "actual": { "value": "=1001.7", "unit": "g" } }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "not a number");
    let (s, v) = w.app.post(&format!("/api/batches/{id}/steps/receiving-weigh/mass-check"), &w.operator, json!({ "actual": { "value": "998.2", "unit": "g" }, "note": "=HYPERLINK(\"http://evil\",\"x\")" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Cached a moment ago, but the new events make it stale.
    let after = w.app.get("/api/reports/mass-checks", &w.analyst).await.1;
    assert_eq!(after["total"], 1);
    assert_eq!(after["summary"]["out"], 1);
    assert_eq!(after["rows"][0]["variance"], "-1.8");
    assert_eq!(after["rows"][0]["variance_pct"], "-0.18");
    let ex = w.app.get("/api/reports/exceptions", &w.admin).await.1;
    assert_eq!(ex["rows"][0]["kind"], "out_of_tolerance");
    // The operator's note became the flag reason; in CSV it cannot be a formula.
    let text = w
        .app
        .client
        .get(format!("{}/api/reports/exceptions/csv", w.app.base))
        .bearer_auth(&w.analyst)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""),
        "{text}"
    );
    let (_, rows) = csv_rows(&text);
    assert!(rows[0]
        .iter()
        .any(|c| c == "'=HYPERLINK(\"http://evil\",\"x\")"));

    for (who, token, json_ok, csv_ok) in [
        ("analyst", &w.analyst, true, true),
        ("admin", &w.admin, true, true),
        ("operator", &w.operator, false, false),
        ("supervisor", &w.supervisor, false, false),
    ] {
        for path in [
            "/api/reports",
            "/api/reports/wip",
            "/api/reports/mass-checks/chart.svg",
        ] {
            let (s, _) = w.app.get(path, token).await;
            assert_eq!(s == StatusCode::OK, json_ok, "{who} {path}: {s}");
            if !json_ok {
                assert_eq!(s, StatusCode::FORBIDDEN);
            }
        }
        let (s, _) = w.app.get("/api/reports/mass-checks/csv", token).await;
        assert_eq!(s == StatusCode::OK, csv_ok, "{who} csv: {s}");
        if !csv_ok {
            assert_eq!(s, StatusCode::FORBIDDEN);
        }
    }
    let (s, _) = w
        .app
        .call(reqwest::Method::GET, "/api/reports/wip", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Bad input: unknown report, filter not taken by the report, malformed values.
    for (path, status) in [
        ("/api/reports/nope", StatusCode::NOT_FOUND),
        ("/api/reports/wip?operator=x", StatusCode::BAD_REQUEST),
        (
            "/api/reports/mass-checks?from=2026-13-01",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/reports/mass-checks?from=2026-02-01&to=2026-01-01",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/reports/mass-checks?status=maybe",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/reports/mass-checks?flow_version=x",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/reports/exceptions?kind=nope", StatusCode::BAD_REQUEST),
        ("/api/reports/mass-checks?bogus=1", StatusCode::BAD_REQUEST),
        (
            "/api/reports/mass-checks/csv?page=2",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (s, v) = w.app.get(path, &w.analyst).await;
        assert_eq!(s, status, "{path}: {v}");
    }
}
