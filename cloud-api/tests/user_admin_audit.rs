//! User administration through the API, as the admin UI uses it: every change is audited,
//! deactivation and a new password end the user's sessions at once, the password policy
//! holds for resets, the last active admin cannot be demoted or deactivated (409), and the
//! audit list filters and pages newest first.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{World, PASSWORD};

async fn user_id(w: &World, username: &str) -> String {
    let (s, list) = w.app.get("/api/users", &w.admin).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("no user {username}: {list}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn patch(w: &World, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
    w.app
        .call(
            Method::PATCH,
            &format!("/api/users/{id}"),
            Some(token),
            Some(body),
        )
        .await
}

/// The newest audit records matching `query` (`order=newest` added).
async fn audit(w: &World, query: &str) -> Vec<Value> {
    let (s, v) = w
        .app
        .get(&format!("/api/audit?order=newest&{query}"), &w.admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{query}: {v}");
    v.as_array().unwrap().clone()
}

async fn login_status(w: &World, username: &str, password: &str) -> StatusCode {
    w.app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "username": username, "password": password })),
        )
        .await
        .0
}

#[tokio::test]
async fn role_changes_deactivation_and_password_resets_are_audited_and_end_sessions() {
    let w = World::new().await;
    let id = user_id(&w, "operator").await;

    // Role and stations: audited with before and after.
    let (s, v) = patch(
        &w,
        &w.admin,
        &id,
        json!({ "role": "supervisor", "stations": ["assay"], "display_name": "Olga" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let changed = audit(&w, "action=user_role_changed&target=user:operator").await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["actor"], "admin");
    assert_eq!(changed[0]["details"]["to"]["role"], "supervisor");
    assert_eq!(changed[0]["details"]["from"]["role"], "operator");
    assert_eq!(
        audit(&w, "action=user_renamed&target=operator").await.len(),
        1
    );

    // Deactivation ends the session that is open now; login is refused.
    let (s, _) = w.app.get("/api/batches", &w.operator).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = patch(&w, &w.admin, &id, json!({ "active": false })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = w.app.get("/api/batches", &w.operator).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_status(&w, "operator", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        audit(&w, "action=user_deactivated&actor=admin").await.len(),
        1
    );

    // Reactivated: logs in again.
    let (s, v) = patch(&w, &w.admin, &id, json!({ "active": true })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = w.app.login("operator", PASSWORD).await;
    assert_eq!(audit(&w, "action=user_activated").await.len(), 1);

    // A reset must meet the policy (readable 422, nothing changes) …
    let (s, v) = w
        .app
        .post(
            &format!("/api/users/{id}/password"),
            &w.admin,
            json!({ "password": "short" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("at least 12"), "{v}");
    let (s, _) = w.app.get("/api/batches", &token).await;
    assert_eq!(s, StatusCode::OK, "a refused reset ends nothing");
    // … and a good one ends the sessions; the old password stops working.
    let new = "a-new-and-long-password";
    let (s, v) = w
        .app
        .post(
            &format!("/api/users/{id}/password"),
            &w.admin,
            json!({ "password": new }),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = w.app.get("/api/batches", &token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_status(&w, "operator", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login_status(&w, "operator", new).await, StatusCode::OK);
    let resets = audit(&w, "action=password_reset").await;
    assert_eq!(resets.len(), 1, "{resets:?}");
    assert_eq!(resets[0]["target"], "user:operator");
    assert!(
        !resets[0].to_string().contains(new),
        "the password is never audited"
    );
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_or_deactivated() {
    let w = World::new().await;
    let me = user_id(&w, "admin").await;
    for body in [json!({ "role": "operator" }), json!({ "active": false })] {
        let (s, v) = patch(&w, &w.admin, &me, body.clone()).await;
        assert_eq!(s, StatusCode::CONFLICT, "{body}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("last active admin"),
            "{v}"
        );
    }
    // With a second admin, the first may step down.
    let (s, v) = w
        .app
        .post(
            "/api/users",
            &w.admin,
            json!({ "username": "admin2", "password": PASSWORD, "role": "admin" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let admin2 = w.app.login("admin2", PASSWORD).await;
    let (s, v) = patch(&w, &admin2, &me, json!({ "role": "analyst" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Now admin2 is the last one.
    let id2 = user_id_as(&w, &admin2, "admin2").await;
    let (s, _) = patch(&w, &admin2, &id2, json!({ "active": false })).await;
    assert_eq!(s, StatusCode::CONFLICT);
}

async fn user_id_as(w: &World, token: &str, username: &str) -> String {
    let (_, list) = w.app.get("/api/users", token).await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_audit_list_filters_and_pages_newest_first() {
    let w = World::new().await;
    let id = user_id(&w, "receiver").await;
    for i in 0..5 {
        let (s, _) = patch(
            &w,
            &w.admin,
            &id,
            json!({ "display_name": format!("R {i}") }),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    let renames = audit(&w, "action=user_renamed&limit=3").await;
    let seqs: Vec<u64> = renames.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs.len(), 3);
    assert!(
        seqs.windows(2).all(|p| p[0] > p[1]),
        "newest first: {seqs:?}"
    );
    assert_eq!(renames[0]["details"]["to"], "R 4");
    let older = audit(&w, &format!("action=user_renamed&before={}", seqs[2])).await;
    assert_eq!(older.len(), 2, "{older:?}");
    assert!(older.iter().all(|r| r["seq"].as_u64().unwrap() < seqs[2]));

    // Days are UTC and inclusive; an empty filter is no filter.
    let today = time::OffsetDateTime::now_utc().date();
    let all = audit(&w, &format!("from={today}&to={today}&actor=")).await;
    assert!(all.len() >= 5, "{all:?}");
    let tomorrow = today.next_day().unwrap();
    assert!(audit(&w, &format!("from={tomorrow}")).await.is_empty());
    // A target is matched as plain text, not a pattern.
    assert!(audit(&w, "target=%25").await.is_empty());
    assert!(audit(&w, "target=user:.*").await.is_empty());
    assert!(audit(&w, "target=user:rec%5Bei%5Dver").await.is_empty());
    // Five renames and the creation.
    assert_eq!(audit(&w, "target=user:receiver&actor=admin").await.len(), 6);

    for q in [
        "after=18446744073709551615",
        "order=newest&before=9223372036854775808",
    ] {
        let (s, v) = w.app.get(&format!("/api/audit?{q}"), &w.admin).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("at most"), "{v}");
    }
    let (s, v) = w.app.get("/api/audit?from=yesterday", &w.admin).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("YYYY-MM-DD"), "{v}");
    // Oldest first is unchanged for existing clients.
    let (_, first) = w.app.get("/api/audit?limit=2", &w.admin).await;
    assert_eq!(first[0]["seq"], 1, "{first}");
    // Analysts read the log too; supervisors and operators do not.
    let (s, v) = w.app.get("/api/audit?order=newest", &w.analyst).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for token in [&w.supervisor, &w.operator] {
        let (s, _) = w.app.get("/api/audit?order=newest", token).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
}
