//! The audit chain detects edits, insertions and deletions made behind the server's back, and
//! the demo mode gives a working system with one user per role.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use rusqlite::Connection;
use support::{run_cli, App, World};

fn tamper(db: &std::path::Path, sql: &str) {
    let c = Connection::open(db).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    // An attacker with the file can drop the append-only triggers; the chain still tells.
    c.execute_batch(
        "DROP TRIGGER IF EXISTS audit_append_only_u; DROP TRIGGER IF EXISTS audit_append_only_d;",
    )
    .unwrap();
    c.execute_batch(sql).unwrap();
}

#[tokio::test]
async fn audit_verify_reports_edited_inserted_and_deleted_records() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let dir = w.app.dir.path().to_path_buf();
    let db = w.app.db_path();

    let (ok, out) = run_cli(&dir, &["audit", "verify"], &[]);
    assert!(ok, "{out}");
    assert!(out.contains("audit chain intact"), "{out}");

    // The append-only triggers refuse edits made through SQL.
    let c = Connection::open(&db).unwrap();
    assert!(c
        .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2", [])
        .is_err());
    assert!(c.execute("DELETE FROM audit WHERE seq = 2", []).is_err());
    drop(c);

    // Edited record.
    tamper(
        &db,
        "UPDATE audit SET details = '{\"role\":\"analyst\"}' WHERE seq = 2;",
    );
    let (ok, out) = run_cli(&dir, &["audit", "verify"], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("record 2") && out.contains("edited"), "{out}");
    let (s, report) = w.app.get("/api/audit/verify", &w.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(report["ok"], false);
}

#[tokio::test]
async fn audit_verify_reports_a_deleted_middle_record_and_a_deleted_tail() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let dir = w.app.dir.path().to_path_buf();
    let db = w.app.db_path();
    let (_, log) = w.app.get("/api/audit?limit=1000", &w.admin).await;
    let n = log.as_array().unwrap().len();
    assert!(n >= 5, "{log}");

    tamper(&db, &format!("DELETE FROM audit WHERE seq = {};", n));
    let (ok, out) = run_cli(&dir, &["audit", "verify"], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("deleted"), "{out}");

    tamper(&db, "DELETE FROM audit WHERE seq = 3;");
    let (ok, out) = run_cli(&dir, &["audit", "verify"], &[]);
    assert!(!ok);
    assert!(
        out.contains("record 4") && out.contains("jumps from 2 to 4"),
        "{out}"
    );
}

#[tokio::test]
async fn audit_verify_reports_an_inserted_record() {
    let w = World::new().await;
    let dir = w.app.dir.path().to_path_buf();
    let db = w.app.db_path();
    // Insert a forged record between 1 and 2 by shifting the rest (seq is the primary key).
    tamper(
        &db,
        "UPDATE audit SET seq = seq + 1000; UPDATE audit SET seq = seq - 999 WHERE seq > 1001;
         INSERT INTO audit (seq, at, actor, action, target, details, ip, prev_hash, hash)
           SELECT 2, at, 'mallory', 'user_created', 'user:mallory', '{}', NULL, hash, hash FROM audit WHERE seq = 1001;
         UPDATE audit SET seq = 1 WHERE seq = 1001;",
    );
    let (ok, out) = run_cli(&dir, &["audit", "verify"], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("record 2"), "{out}");
}

#[tokio::test]
async fn demo_mode_seeds_a_gold_flow_and_one_user_per_role() {
    let app = App::spawn_with("demo", &[]).await;
    let mut creds = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while creds.len() < 4 && std::time::Instant::now() < deadline {
        if let Ok(line) = app
            .stdout
            .recv_timeout(std::time::Duration::from_millis(200))
        {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [_role, "username", user, "password", pw] = words[..] {
                creds.push((user.to_string(), pw.to_string()));
            }
        }
    }
    assert_eq!(creds.len(), 4, "one login per role is printed: {creds:?}");
    let mut tokens = Vec::new();
    for (user, pw) in &creds {
        tokens.push(app.login(user, pw).await);
    }
    let (s, flows) = app.get("/api/flows", &tokens[0]).await;
    assert_eq!(s, StatusCode::OK);
    let gold = &flows.as_array().unwrap()[0];
    assert_eq!(gold["flow_id"], "gold_refining");
    assert_eq!(gold["status"], "active");
    let mut types: Vec<String> = gold["stations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|st| st["type"].as_str().unwrap().to_string())
        })
        .collect();
    types.sort();
    types.dedup();
    assert_eq!(
        types,
        [
            "checklist",
            "instruction",
            "mass_check",
            "photo",
            "signature"
        ]
    );
    let names: Vec<&str> = gold["stations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Receiving",
            "Refining",
            "Assay",
            "Casting",
            "Quality control"
        ]
    );
}
