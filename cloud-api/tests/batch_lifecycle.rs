//! A batch through every step type against the real server: out-of-tolerance flag, approval by
//! a supervisor, completion; and two kiosks racing for the same step.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{World, PASSWORD};

const PHOTO: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[tokio::test]
async fn a_batch_runs_through_every_step_type_with_a_flag_and_an_approval() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let app = &w.app;
    let op = &w.operator;
    let id = w.started_batch().await;
    let b = |p: &str| format!("/api/batches/{id}{p}");

    let (s, v) = app.get(&b(""), op).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["batch"]["batch_number"]
            .as_str()
            .unwrap()
            .starts_with("B-20"),
        "{v}"
    );
    assert_eq!(v["current_step"]["step"]["step_id"], "receiving-inspect");

    // Skipping ahead is refused and changes nothing.
    let (s, v) = app
        .post(
            &b("/steps/receiving-photo/complete"),
            op,
            json!({ "payload": { "type": "photo", "photo_sha256": PHOTO } }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("receiving-inspect"),
        "{v}"
    );

    let (s, v) = app
        .post(
            &b("/steps/receiving-inspect/complete"),
            op,
            json!({ "payload": { "type": "instruction", "acknowledged": true } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Within tolerance (1000 g ± 0.5 g, boundary inclusive): the step completes.
    let (s, v) = app
        .post(
            &b("/steps/receiving-weigh/mass-check"),
            op,
            json!({ "actual": { "value": "1000.5", "unit": "g" } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["events"][0]["type"], "mass_checked");
    assert_eq!(v["events"][0]["check"]["within"], true);
    assert_eq!(v["batch"]["status"], "in_progress");

    let (s, _) = app
        .post(
            &b("/steps/receiving-photo/complete"),
            op,
            json!({ "payload": { "type": "photo", "photo_sha256": PHOTO } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let items = json!([
        "Fume hood running",
        "Acid-resistant PPE worn",
        "Spill kit at hand"
    ]);
    let (s, _) = app
        .post(
            &b("/steps/refining-safety/complete"),
            op,
            json!({ "payload": { "type": "checklist", "checked": items } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Out of tolerance (995 g ± 1 %): flagged, waits for approval.
    let (s, v) = app
        .post(
            &b("/steps/refining-weigh/mass-check"),
            op,
            json!({ "actual": { "value": "983.7", "unit": "g" }, "note": "crucible residue" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["batch"]["status"], "flagged");
    assert_eq!(v["events"][0]["check"]["within"], false);
    assert_eq!(v["events"][0]["check"]["variance"], "-11.3");
    let flag_id = v["events"][1]["flag_id"].as_u64().unwrap();

    // A flagged batch does not move on.
    let (s, _) = app
        .post(
            &b("/steps/assay-sample/complete"),
            op,
            json!({ "payload": { "type": "instruction", "acknowledged": true } }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Operators cannot approve.
    let (s, _) = app
        .post(
            &b(&format!("/flags/{flag_id}/approve")),
            op,
            json!({ "reason": "fine" }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The supervisor sees it in the queue with its evidence and approves with a reason.
    let (s, q) = app.get("/api/approvals", &w.supervisor).await;
    assert_eq!(s, StatusCode::OK);
    let item = q
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["batch_id"] == id.as_str())
        .expect("queued");
    assert_eq!(item["evidence"]["actual"]["value"], "983.7");
    let (s, v) = app
        .post(
            &b(&format!("/flags/{flag_id}/approve")),
            &w.supervisor,
            json!({ "reason": "" }),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required: {v}"
    );
    let (s, v) = app
        .post(
            &b(&format!("/flags/{flag_id}/approve")),
            &w.supervisor,
            json!({ "reason": "residue recovered in next melt" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["batch"]["status"], "in_progress");
    assert_eq!(v["current_step"]["step"]["step_id"], "assay-sample");

    let (s, _) = app
        .post(
            &b("/steps/assay-sample/complete"),
            op,
            json!({ "payload": { "type": "instruction", "acknowledged": true } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // Signature: wrong password refused, right one accepted.
    let sig = |pw: &str| json!({ "payload": { "type": "signature", "meaning": "Assay verified by" }, "password": pw });
    let (s, _) = app
        .post(
            &b("/steps/assay-verify/complete"),
            op,
            sig("not my password"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = app
        .post(&b("/steps/assay-verify/complete"), op, sig(PASSWORD))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = app
        .post(
            &b("/steps/casting-weigh/mass-check"),
            op,
            json!({ "actual": { "value": "0.99", "unit": "kg" } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .post(
            &b("/steps/casting-photo/complete"),
            op,
            json!({ "payload": { "type": "photo", "photo_sha256": PHOTO } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // Completing before the last steps are done is refused.
    let (s, _) = app.post(&b("/complete"), op, json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let qc = json!([
        "Serial number stamped",
        "Fineness stamped",
        "Surface free of defects"
    ]);
    let (s, _) = app
        .post(
            &b("/steps/qc-inspect/complete"),
            op,
            json!({ "payload": { "type": "checklist", "checked": qc } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .post(&b("/steps/qc-release/complete"), op, json!({ "payload": { "type": "signature", "meaning": "Released by" }, "password": PASSWORD }))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.post(&b("/complete"), op, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["batch"]["status"], "completed");

    // The full history is there, in order, and replays to the same state.
    let (_, v) = app.get(&b(""), &w.analyst).await;
    let events = v["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"created"));
    assert_eq!(types.last(), Some(&"completed"));
    assert!(types.contains(&"flag_approved"));
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"].as_u64().unwrap(), i as u64 + 1);
    }
    let recorded: Vec<metcon_shared::batch::RecordedEvent> =
        serde_json::from_value(v["events"].clone()).unwrap();
    let replayed = metcon_shared::batch::BatchState::replay(&recorded).unwrap();
    assert_eq!(serde_json::to_value(&replayed).unwrap(), v["batch"]);

    // Approval and signatures are in the audit chain, which verifies.
    let (s, log) = app.get("/api/audit?limit=1000", &w.admin).await;
    assert_eq!(s, StatusCode::OK);
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for a in [
        "login",
        "user_created",
        "flow_published",
        "flag_raised",
        "flag_approved",
        "step_signed",
        "signature_failed",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let (s, report) = app.get("/api/audit/verify", &w.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test]
async fn of_two_concurrent_completions_of_a_step_exactly_one_wins() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    for _ in 0..5 {
        let id = w.started_batch().await;
        let path = format!("/api/batches/{id}/steps/receiving-inspect/complete");
        let body = json!({ "payload": { "type": "instruction", "acknowledged": true } });
        let (a, b) = tokio::join!(
            w.app.post(&path, &w.operator, body.clone()),
            w.app.post(&path, &w.supervisor, body.clone())
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "{a:?} {b:?}"
        );
        let (_, v) = w.app.get(&format!("/api/batches/{id}"), &w.operator).await;
        let completed = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "step_completed")
            .count();
        assert_eq!(completed, 1);
        assert_eq!(v["batch"]["version"], 3);
    }
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict_and_changes_nothing() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let id = w.started_batch().await;
    let (s, v) = w
        .app
        .post(&format!("/api/batches/{id}/steps/receiving-inspect/complete"), &w.operator, json!({ "payload": { "type": "instruction", "acknowledged": true }, "expected_version": 1 }))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["status"], 409);
    let (_, v) = w.app.get(&format!("/api/batches/{id}"), &w.operator).await;
    assert_eq!(v["batch"]["version"], 2);
}

#[tokio::test]
async fn batch_numbers_count_per_pipeline_and_operators_see_their_stations() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let mut numbers = Vec::new();
    for _ in 0..3 {
        let (s, v) = w
            .app
            .post(
                "/api/batches",
                &w.receiver,
                json!({ "flow_id": "gold_refining", "priority": "high" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        numbers.push(v["batch"]["batch_number"].as_str().unwrap().to_string());
    }
    let year = time::OffsetDateTime::now_utc().year();
    assert_eq!(
        numbers,
        vec![
            format!("B-{year}-0001"),
            format!("B-{year}-0002"),
            format!("B-{year}-0003")
        ]
    );
    // A silver flow counts from 1 again.
    let mut silver = metcon_cloud::demo::gold_flow();
    silver.pipeline = "silver".into();
    silver.name = "Silver Refining".into();
    let (s, _) = w
        .app
        .post(
            "/api/flows",
            &w.admin,
            json!({ "flow_id": "silver_refining", "content": silver }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = w
        .app
        .post(
            "/api/flows/silver_refining/versions/1/publish",
            &w.admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = w
        .app
        .post(
            "/api/batches",
            &w.operator,
            json!({ "flow_id": "silver_refining" }),
        )
        .await;
    assert_eq!(v["batch"]["batch_number"], format!("B-{year}-0001"));

    // The receiver only sees batches waiting at receiving; filters work.
    let (_, page) = w.app.get("/api/batches", &w.receiver).await;
    assert_eq!(page["total"], 4);
    let (_, page) = w.app.get("/api/batches?pipeline=silver", &w.admin).await;
    assert_eq!(page["total"], 1);
    let (_, page) = w.app.get("/api/batches?status=completed", &w.admin).await;
    assert_eq!(page["total"], 0);
    let (s, _) = w.app.get("/api/batches?status=nonsense", &w.admin).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The receiver cannot work at refining.
    let id = w.started_batch().await;
    let (s, _) = w
        .app
        .post(
            &format!("/api/batches/{id}/steps/receiving-inspect/complete"),
            &w.receiver,
            json!({ "payload": { "type": "instruction", "acknowledged": true } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = w
        .app
        .post(
            &format!("/api/batches/{id}/steps/receiving-weigh/mass-check"),
            &w.receiver,
            json!({ "actual": { "value": "1000", "unit": "g" } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = w
        .app
        .post(
            &format!("/api/batches/{id}/steps/receiving-photo/complete"),
            &w.receiver,
            json!({ "payload": { "type": "photo", "photo_sha256": PHOTO } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let items = json!([
        "Fume hood running",
        "Acid-resistant PPE worn",
        "Spill kit at hand"
    ]);
    let (s, v) = w
        .app
        .post(
            &format!("/api/batches/{id}/steps/refining-safety/complete"),
            &w.receiver,
            json!({ "payload": { "type": "checklist", "checked": items } }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (_, board) = w.app.get("/api/wip", &w.analyst).await;
    assert_eq!(board["total"], 5, "{board}");
}

#[tokio::test]
async fn block_unblock_and_admin_override() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let id = w.started_batch().await;
    let b = |p: &str| format!("/api/batches/{id}{p}");
    let ack = json!({ "payload": { "type": "instruction", "acknowledged": true } });
    w.app
        .post(
            &b("/steps/receiving-inspect/complete"),
            &w.operator,
            ack.clone(),
        )
        .await;
    let (s, _) = w
        .app
        .post(
            &b("/block"),
            &w.operator,
            json!({ "reason": "seal broken" }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = w
        .app
        .post(
            &b("/block"),
            &w.supervisor,
            json!({ "reason": "seal broken" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["batch"]["status"], "blocked");
    let (s, _) = w
        .app
        .post(
            &b("/steps/receiving-weigh/mass-check"),
            &w.operator,
            json!({ "actual": { "value": "1000", "unit": "g" } }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = w
        .app
        .post(&b("/unblock"), &w.supervisor, json!({ "reason": "ok" }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Admin moves it back to the inspection while blocked, then unblocks.
    let (s, _) = w
        .app
        .post(
            &b("/override"),
            &w.supervisor,
            json!({ "to_step_id": "receiving-inspect", "reason": "re-inspect" }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = w
        .app
        .post(
            &b("/override"),
            &w.admin,
            json!({ "to_step_id": "receiving-photo", "reason": "forward" }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "an override only goes back: {v}");
    let (s, v) = w
        .app
        .post(
            &b("/override"),
            &w.admin,
            json!({ "to_step_id": "receiving-inspect", "reason": "re-inspect the seals" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = w
        .app
        .post(
            &b("/unblock"),
            &w.admin,
            json!({ "reason": "new seal fitted" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["batch"]["status"], "in_progress");
    assert_eq!(v["current_step"]["step"]["step_id"], "receiving-inspect");
    let (_, log) = w.app.get("/api/audit?limit=1000", &w.admin).await;
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for a in ["batch_blocked", "step_overridden", "batch_unblocked"] {
        assert!(actions.contains(&a), "{a} missing");
    }
}
