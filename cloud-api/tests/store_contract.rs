//! The storage contract, written once and run against every backend: SQLite always, MongoDB
//! whenever one is available (`METCON_TEST_MONGODB_URI`, or a `secantusd-rs` stand-in that
//! each test starts for itself; see `metcon_e2e::mongo`). Each guarantee is one function
//! taking a fresh store; the `contract!` macro instantiates it as `sqlite::<name>` and
//! `mongodb::<name>`. Each MongoDB test uses its own uniquely named database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use metcon_cloud::reports::csv::CsvWriter;
use metcon_cloud::reports::generate::{generate, Options};
use metcon_cloud::reports::{rows, PageEnd, ReportFilter, Window};
use metcon_cloud::store::mongo::{MongoOptions, MongoStore};
use metcon_cloud::store::sqlite::SqliteStore;
use metcon_cloud::store::*;
use metcon_shared::batch::{
    BatchCommand, BatchState, BatchStatus, EventActor, MassSource, Priority, RecordedEvent,
};
use metcon_shared::flow::Flow;
use metcon_shared::mass::Mass;
use metcon_shared::role::{Actor, Role};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

// --- backends --------------------------------------------------------------------------------

/// A store under test and what keeps it alive.
struct Backend {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _mongo: Option<metcon_e2e::mongo::MongoTarget>,
    mongo: Option<MongoStore>,
}

impl Backend {
    async fn finish(self) {
        if let Some(m) = &self.mongo {
            m.drop_database().await.expect("drop the test database");
        }
    }
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("metcon.db")).expect("open sqlite");
    Backend {
        store: Arc::new(store),
        _dir: Some(dir),
        _mongo: None,
        mongo: None,
    }
}

async fn mongo(tag: &str) -> Option<Backend> {
    let target = metcon_e2e::mongo::MongoTarget::from_env(tag).expect("a MongoDB for the test")?;
    let opts = MongoOptions {
        standalone_transactions: target.standalone_transactions,
    };
    let store = MongoStore::open(&target.uri, &opts)
        .await
        .expect("open MongoDB");
    Some(Backend {
        store: Arc::new(store.clone()),
        _dir: None,
        _mongo: Some(target),
        mongo: Some(store),
    })
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let b = super::sqlite();
                    super::$name(b.store.clone()).await;
                    b.finish().await;
                }
            )*
        }
        mod mongodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(b) = super::mongo(stringify!($name)).await else {
                        eprintln!("no MongoDB (set METCON_TEST_MONGODB_URI or install secantusd-rs): skipped");
                        return;
                    };
                    super::$name(b.store.clone()).await;
                    b.finish().await;
                }
            )*
        }
    };
}

contract!(
    users_crud_duplicates_and_not_found,
    setup_token_works_once_and_only_without_users,
    sessions_touch_revoke_and_rotate,
    concurrent_use_of_one_refresh_token_rotates_once_and_revokes,
    flow_lifecycle_with_conditional_status_changes,
    concurrent_publishes_leave_exactly_one_active_version,
    batch_numbers_inserts_and_conditional_appends,
    of_concurrent_appends_exactly_one_wins,
    appends_with_audit_commit_together_or_not_at_all,
    the_audit_chain_never_forks_under_concurrent_writers,
    batch_listing_pages_and_filters,
    imported_history_answers_every_report_like_sqlite,
    devices_register_enroll_once_and_rotate_keys,
    readings_group_commit_bind_once_and_count,
    rejections_quarantine_calibrations_and_presence,
    device_fleet_survives_export_and_import,
    photo_records_are_found_by_batch_and_digest_and_link_once,
    the_latest_frame_of_a_device_is_found,
    the_audit_search_filters_and_pages_newest_first,
    two_admins_demoting_each_other_at_once_leave_one,
    a_new_password_or_deactivation_ends_the_sessions_in_the_same_write,
);

/// The start-up check on a real wire-protocol server: a standalone one (no replica set in its
/// `hello`) is refused with a message saying what to do, unless declared a stand-in.
#[tokio::test]
async fn a_standalone_mongodb_is_refused_unless_declared_a_stand_in() {
    let Some(target) =
        metcon_e2e::mongo::MongoTarget::private("standalone", &["--standalone"]).unwrap()
    else {
        eprintln!("no secantusd-rs: skipped");
        return;
    };
    let err = MongoStore::open(&target.uri, &MongoOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("standalone") && text.contains("--replSet"),
        "{text}"
    );
    let store = MongoStore::open(
        &target.uri,
        &MongoOptions {
            standalone_transactions: true,
        },
    )
    .await
    .unwrap();
    assert!(store.topology().set_name.is_none());
    store.ping().await.unwrap();
    // The default daemon advertises a one-member replica set and opens without the opt-in.
    let rs = metcon_e2e::mongo::MongoTarget::private("replset", &[])
        .unwrap()
        .unwrap();
    let store = MongoStore::open(&rs.uri, &MongoOptions::default())
        .await
        .unwrap();
    assert!(store.topology().set_name.is_some());
}

// --- helpers ---------------------------------------------------------------------------------

const T0: OffsetDateTime = datetime!(2026-03-02 08:00:00.123456 UTC);

fn user(name: &str, role: Role) -> User {
    User {
        id: format!("id-{name}"),
        username: name.into(),
        display_name: format!("User {name}"),
        role,
        stations: vec!["receiving".into(), "refining".into()],
        active: true,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: T0,
        updated_at: T0,
    }
}

fn audit(action: &str, target: &str) -> NewAudit {
    NewAudit {
        at: T0,
        actor: "alice".into(),
        action: action.into(),
        target: target.into(),
        details: serde_json::json!({ "reason": "contract", "n": 3 }),
        ip: Some("10.0.0.7".into()),
    }
}

fn operator() -> Actor {
    Actor {
        user_id: "id-op".into(),
        username: "op".into(),
        role: Role::Admin,
        stations: vec![],
    }
}

async fn all_audit(s: &dyn Store) -> Vec<AuditRecord> {
    s.audit_records(0, 10_000).await.unwrap()
}

async fn published_flow(s: &dyn Store) -> Flow {
    let mut f = Flow::new_draft(
        "gold_refining".into(),
        1,
        metcon_cloud::demo::gold_flow(),
        "admin".into(),
        T0,
    );
    s.insert_flow(&f, &[]).await.unwrap();
    f.publish(None, Some(T0), T0).unwrap();
    s.publish_flow(&f, None, &[]).await.unwrap();
    f
}

async fn new_batch(
    s: &dyn Store,
    flow: &Flow,
    priority: Priority,
    at: OffsetDateTime,
) -> BatchRecord {
    let n = s
        .next_batch_seq(&flow.content.pipeline, at.year())
        .await
        .unwrap();
    let number = metcon_shared::batch_number::BatchNumber::new(at.year(), n).to_string();
    let id = uuid::Uuid::new_v4();
    let event = BatchState::create(id, number, flow, priority, &operator(), at).unwrap();
    let rec = RecordedEvent {
        event_id: uuid::Uuid::new_v4(),
        seq: 1,
        at,
        actor: EventActor::from(&operator()),
        event,
    };
    let state = BatchState::from_created(&rec).unwrap();
    let record = BatchRecord::new(state, &flow.content);
    s.insert_batch(&record, &rec).await.unwrap();
    record
}

/// Decides `cmd` on `b` and returns the events and the record after them (not stored).
fn decide(
    b: &BatchRecord,
    flow: &Flow,
    cmd: BatchCommand,
    at: OffsetDateTime,
) -> (Vec<RecordedEvent>, BatchRecord) {
    let events = b.state.decide(&flow.content, &operator(), &cmd).unwrap();
    let mut state = b.state.clone();
    let mut recorded = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        let rec = RecordedEvent {
            event_id: uuid::Uuid::new_v4(),
            seq: b.state.version + 1 + i as u64,
            at,
            actor: EventActor::from(&operator()),
            event: e,
        };
        state.apply(&rec).unwrap();
        recorded.push(rec);
    }
    (recorded, BatchRecord::new(state, &flow.content))
}

async fn run(
    s: &dyn Store,
    b: &BatchRecord,
    flow: &Flow,
    cmd: BatchCommand,
    at: OffsetDateTime,
) -> BatchRecord {
    let (events, next) = decide(b, flow, cmd, at);
    s.append_batch_events(&next, b.state.version, &events, &[])
        .await
        .unwrap();
    next
}

// --- users and setup -------------------------------------------------------------------------

async fn users_crud_duplicates_and_not_found(s: Arc<dyn Store>) {
    s.ping().await.unwrap();
    assert_eq!(s.count_users().await.unwrap(), 0);
    let bob = user("bob", Role::Operator);
    s.create_user(&bob, &[audit("user_created", "user:bob")])
        .await
        .unwrap();
    s.create_user(&user("alice", Role::Admin), &[])
        .await
        .unwrap();
    assert_eq!(s.user_by_id("id-bob").await.unwrap(), Some(bob.clone()));
    assert_eq!(s.user_by_username("bob").await.unwrap(), Some(bob.clone()));
    assert_eq!(s.user_by_username("nobody").await.unwrap(), None);
    assert_eq!(s.user_by_id("id-nobody").await.unwrap(), None);
    let names: Vec<String> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(s.count_users().await.unwrap(), 2);

    // Same username, other id: Duplicate, and its audit record is not written.
    let clash = User {
        id: "id-bob-2".into(),
        ..bob.clone()
    };
    let e = s
        .create_user(&clash, &[audit("user_created", "user:bob")])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Duplicate(_)), "{e:?}");
    assert_eq!(all_audit(s.as_ref()).await.len(), 1);

    let changed = User {
        display_name: "Robert".into(),
        role: Role::Supervisor,
        stations: vec!["qc".into()],
        active: false,
        password_hash: "$argon2id$new".into(),
        updated_at: T0 + Duration::minutes(5),
        ..bob.clone()
    };
    s.update_user(
        &changed,
        bob.updated_at,
        &[audit("user_updated", "user:bob")],
    )
    .await
    .unwrap();
    assert_eq!(s.user_by_id("id-bob").await.unwrap(), Some(changed.clone()));
    // A change read before that one is refused, and writes nothing.
    let stale = User {
        password_hash: "$argon2id$stale".into(),
        updated_at: T0 + Duration::minutes(6),
        ..bob.clone()
    };
    let e = s
        .update_user(&stale, bob.updated_at, &[audit("user_updated", "user:bob")])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict), "{e:?}");
    assert_eq!(s.user_by_id("id-bob").await.unwrap(), Some(changed));
    let ghost = user("ghost", Role::Analyst);
    let e = s
        .update_user(
            &ghost,
            ghost.updated_at,
            &[audit("user_updated", "user:ghost")],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    let a = all_audit(s.as_ref()).await;
    assert_eq!(
        a.iter()
            .map(|r| r.entry.action.as_str())
            .collect::<Vec<_>>(),
        ["user_created", "user_updated"]
    );
    assert_eq!(
        a[0].entry,
        audit("user_created", "user:bob"),
        "audit records come back as written"
    );
    assert!(metcon_cloud::audit::verify(s.as_ref()).await.unwrap().ok);
}

async fn setup_token_works_once_and_only_without_users(s: Arc<dyn Store>) {
    let admin = user("root", Role::Admin);
    s.set_setup_token("hash-1", T0 + Duration::hours(24))
        .await
        .unwrap();
    // A second token replaces the first.
    s.set_setup_token("hash-2", T0 + Duration::hours(24))
        .await
        .unwrap();
    let nf = |r: StoreResult<()>| matches!(r, Err(StoreError::NotFound(_)));
    assert!(
        nf(s.consume_setup_token("hash-1", T0, &admin, &[]).await),
        "replaced token"
    );
    assert!(nf(s.consume_setup_token("wrong", T0, &admin, &[]).await));
    assert!(
        nf(
            s.consume_setup_token("hash-2", T0 + Duration::hours(25), &admin, &[])
                .await
        ),
        "expired"
    );
    assert_eq!(s.count_users().await.unwrap(), 0);
    s.consume_setup_token("hash-2", T0, &admin, &[audit("setup", "user:root")])
        .await
        .unwrap();
    assert_eq!(
        s.user_by_username("root").await.unwrap(),
        Some(admin.clone())
    );
    assert_eq!(all_audit(s.as_ref()).await.len(), 1);
    assert!(
        nf(
            s.consume_setup_token("hash-2", T0, &user("root2", Role::Admin), &[])
                .await
        ),
        "used"
    );
    // A fresh token is useless once users exist.
    s.set_setup_token("hash-3", T0 + Duration::hours(24))
        .await
        .unwrap();
    assert!(nf(s
        .consume_setup_token("hash-3", T0, &user("root3", Role::Admin), &[])
        .await));
    assert_eq!(s.count_users().await.unwrap(), 1);
}

// --- sessions --------------------------------------------------------------------------------

fn session(id: &str, user_id: &str) -> Session {
    Session {
        id: id.into(),
        user_id: user_id.into(),
        created_at: T0,
        last_seen: T0,
        revoked_at: None,
    }
}

fn token(hash: &str, session: &str, expires: OffsetDateTime) -> RefreshToken {
    RefreshToken {
        token_hash: hash.into(),
        session_id: session.into(),
        user_id: "id-bob".into(),
        expires_at: expires,
    }
}

async fn a_new_password_or_deactivation_ends_the_sessions_in_the_same_write(s: Arc<dyn Store>) {
    let bob = user("bob", Role::Operator);
    s.create_user(&bob, &[]).await.unwrap();
    let later = T0 + Duration::hours(12);
    let open = |s: Arc<dyn Store>, id: &'static str| async move {
        s.session(id).await.unwrap().unwrap().revoked_at.is_none()
    };
    s.create_session(&session("s1", "id-bob"), &token("t1", "s1", later))
        .await
        .unwrap();
    // A rename leaves the session open.
    let renamed = User {
        display_name: "Robert".into(),
        updated_at: T0 + Duration::minutes(1),
        ..bob.clone()
    };
    s.update_user(&renamed, bob.updated_at, &[]).await.unwrap();
    assert!(open(s.clone(), "s1").await);
    // A new password ends it, at the change's time.
    let reset = User {
        password_hash: "$argon2id$new".into(),
        updated_at: T0 + Duration::minutes(2),
        ..renamed.clone()
    };
    s.update_user(
        &reset,
        renamed.updated_at,
        &[audit("password_reset", "user:bob")],
    )
    .await
    .unwrap();
    assert_eq!(
        s.session("s1").await.unwrap().unwrap().revoked_at,
        Some(reset.updated_at)
    );
    // So does a deactivation; a refused change ends nothing.
    s.create_session(&session("s2", "id-bob"), &token("t2", "s2", later))
        .await
        .unwrap();
    let off = User {
        active: false,
        updated_at: T0 + Duration::minutes(3),
        ..reset.clone()
    };
    let e = s.update_user(&off, bob.updated_at, &[]).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict), "{e:?}");
    assert!(open(s.clone(), "s2").await);
    s.update_user(&off, reset.updated_at, &[]).await.unwrap();
    assert!(!open(s.clone(), "s2").await);
}

async fn sessions_touch_revoke_and_rotate(s: Arc<dyn Store>) {
    s.create_user(&user("bob", Role::Operator), &[])
        .await
        .unwrap();
    let later = T0 + Duration::hours(12);
    s.create_session(&session("s1", "id-bob"), &token("t1", "s1", later))
        .await
        .unwrap();
    assert_eq!(
        s.session("s1").await.unwrap(),
        Some(session("s1", "id-bob"))
    );
    assert_eq!(s.session("nope").await.unwrap(), None);
    let e = s
        .create_session(&session("s1", "id-bob"), &token("t1b", "s1", later))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Duplicate(_)), "{e:?}");

    // last_seen only moves forward.
    s.touch_session("s1", T0 + Duration::minutes(3))
        .await
        .unwrap();
    s.touch_session("s1", T0 + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        s.session("s1").await.unwrap().unwrap().last_seen,
        T0 + Duration::minutes(3)
    );

    // Rotation: valid → rotated; the old one again → reuse, session revoked; then invalid.
    let now = T0 + Duration::minutes(10);
    match s
        .rotate_refresh_token("t1", &token("t2", "s1", later), now)
        .await
        .unwrap()
    {
        RotateOutcome::Rotated(sess) => {
            assert_eq!(sess.id, "s1");
            assert_eq!(sess.user_id, "id-bob");
            assert_eq!(sess.revoked_at, None);
        }
        other => panic!("{other:?}"),
    }
    match s
        .rotate_refresh_token("t2", &token("t3", "s1", later), now)
        .await
        .unwrap()
    {
        RotateOutcome::Rotated(_) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.rotate_refresh_token("t1", &token("t4", "s1", later), now)
            .await
            .unwrap(),
        RotateOutcome::Reused
    );
    assert_eq!(
        s.session("s1").await.unwrap().unwrap().revoked_at,
        Some(now)
    );
    assert_eq!(
        s.rotate_refresh_token("t3", &token("t5", "s1", later), now)
            .await
            .unwrap(),
        RotateOutcome::Invalid,
        "session revoked"
    );
    assert_eq!(
        s.rotate_refresh_token("unknown", &token("t6", "s1", later), now)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );

    // Expired tokens are invalid.
    s.create_session(
        &session("s2", "id-bob"),
        &token("e1", "s2", T0 + Duration::minutes(1)),
    )
    .await
    .unwrap();
    assert_eq!(
        s.rotate_refresh_token("e1", &token("e2", "s2", later), now)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );

    // Revoking one session, then all of a user's; a revocation time never moves.
    s.create_session(&session("s3", "id-bob"), &token("r3", "s3", later))
        .await
        .unwrap();
    s.create_session(&session("s4", "id-bob"), &token("r4", "s4", later))
        .await
        .unwrap();
    s.revoke_session("s3", now).await.unwrap();
    s.revoke_user_sessions("id-bob", later).await.unwrap();
    assert_eq!(
        s.session("s3").await.unwrap().unwrap().revoked_at,
        Some(now)
    );
    assert_eq!(
        s.session("s4").await.unwrap().unwrap().revoked_at,
        Some(later)
    );
    assert_eq!(
        s.session("s1").await.unwrap().unwrap().revoked_at,
        Some(now)
    );
}

async fn concurrent_use_of_one_refresh_token_rotates_once_and_revokes(s: Arc<dyn Store>) {
    s.create_user(&user("bob", Role::Operator), &[])
        .await
        .unwrap();
    let later = T0 + Duration::hours(12);
    s.create_session(&session("s1", "id-bob"), &token("t1", "s1", later))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.rotate_refresh_token(
                    "t1",
                    &token(&format!("n{i}"), "s1", later),
                    T0 + Duration::minutes(1),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, RotateOutcome::Rotated(_)))
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, RotateOutcome::Rotated(_) | RotateOutcome::Reused)),
        "{outcomes:?}"
    );
    assert!(
        s.session("s1").await.unwrap().unwrap().revoked_at.is_some(),
        "reuse revokes the session"
    );
}

// --- flows -----------------------------------------------------------------------------------

async fn flow_lifecycle_with_conditional_status_changes(s: Arc<dyn Store>) {
    let content = metcon_cloud::demo::gold_flow();
    let mut v1 = Flow::new_draft("gold".into(), 1, content.clone(), "admin".into(), T0);
    s.insert_flow(&v1, &[audit("flow_created", "flow:gold@1")])
        .await
        .unwrap();
    let e = s
        .insert_flow(&v1, &[audit("flow_created", "flow:gold@1")])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Duplicate(_)), "{e:?}");
    v1.content.name = "Gold, edited".into();
    s.save_draft(&v1, &[]).await.unwrap();
    assert_eq!(s.flow("gold", 1).await.unwrap(), Some(v1.clone()));
    assert_eq!(s.active_flow("gold").await.unwrap(), None);

    v1.publish(None, Some(T0), T0).unwrap();
    s.publish_flow(&v1, None, &[audit("flow_published", "flow:gold@1")])
        .await
        .unwrap();
    assert_eq!(s.active_flow("gold").await.unwrap(), Some(v1.clone()));
    // Published versions are no drafts any more.
    assert!(matches!(
        s.save_draft(&v1, &[]).await,
        Err(StoreError::Conflict)
    ));

    let mut v2 = Flow::new_draft(
        "gold".into(),
        2,
        content.clone(),
        "admin".into(),
        T0 + Duration::days(1),
    );
    s.insert_flow(&v2, &[]).await.unwrap();
    let mut v1_archived = v1.clone();
    v2.publish(Some(&mut v1_archived), None, T0 + Duration::days(1))
        .unwrap();
    s.publish_flow(
        &v2,
        Some(&v1_archived),
        &[audit("flow_published", "flow:gold@2")],
    )
    .await
    .unwrap();
    assert_eq!(s.flow("gold", 1).await.unwrap(), Some(v1_archived.clone()));
    assert_eq!(s.active_flow("gold").await.unwrap(), Some(v2.clone()));

    // Publishing v3 against the stale belief that v1 is active: Conflict, nothing changes.
    let mut v3 = Flow::new_draft(
        "gold".into(),
        3,
        content.clone(),
        "admin".into(),
        T0 + Duration::days(2),
    );
    s.insert_flow(&v3, &[]).await.unwrap();
    let mut stale = v1.clone();
    v3.publish(Some(&mut stale), None, T0 + Duration::days(2))
        .unwrap();
    let before = all_audit(s.as_ref()).await.len();
    assert!(matches!(
        s.publish_flow(&v3, Some(&stale), &[audit("flow_published", "flow:gold@3")])
            .await,
        Err(StoreError::Conflict)
    ));
    // Nor without archiving the active one.
    assert!(matches!(
        s.publish_flow(&v3, None, &[]).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.flow("gold", 3).await.unwrap().unwrap().status.as_str(),
        "draft"
    );
    assert_eq!(s.flow("gold", 1).await.unwrap(), Some(v1_archived));
    assert_eq!(all_audit(s.as_ref()).await.len(), before);

    let versions: Vec<u32> = s
        .flow_versions("gold")
        .await
        .unwrap()
        .iter()
        .map(|f| f.version)
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    let other = Flow::new_draft("alpha".into(), 1, content, "admin".into(), T0);
    s.insert_flow(&other, &[]).await.unwrap();
    let latest: Vec<(String, u32)> = s
        .list_flows()
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.flow_id, f.version))
        .collect();
    assert_eq!(latest, [("alpha".to_string(), 1), ("gold".to_string(), 3)]);

    let mut v2_archived = v2.clone();
    v2_archived.archive().unwrap();
    s.archive_flow(&v2_archived, &[audit("flow_archived", "flow:gold@2")])
        .await
        .unwrap();
    assert_eq!(s.active_flow("gold").await.unwrap(), None);
    assert!(matches!(
        s.archive_flow(&v2_archived, &[]).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.flow("gold", 9).await.unwrap(), None);
    assert!(metcon_cloud::audit::verify(s.as_ref()).await.unwrap().ok);
}

async fn concurrent_publishes_leave_exactly_one_active_version(s: Arc<dyn Store>) {
    let content = metcon_cloud::demo::gold_flow();
    // A new flow with two drafts published at once (nothing to archive), then two more
    // drafts both archiving the winner.
    for round in 0..2u32 {
        let base = round * 2 + 1;
        let mut drafts = Vec::new();
        for v in base..base + 2 {
            let f = Flow::new_draft("race".into(), v, content.clone(), "admin".into(), T0);
            s.insert_flow(&f, &[]).await.unwrap();
            drafts.push(f);
        }
        let active = s.active_flow("race").await.unwrap();
        let tasks: Vec<_> = drafts
            .into_iter()
            .map(|mut f| {
                let s = s.clone();
                let mut prev = active.clone();
                tokio::spawn(async move {
                    f.publish(prev.as_mut(), Some(T0), T0).unwrap();
                    s.publish_flow(&f, prev.as_ref(), &[audit("flow_published", "flow:race")])
                        .await
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(StoreError::Conflict) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(ok, 1, "round {round}");
        let actives = s
            .flow_versions("race")
            .await
            .unwrap()
            .iter()
            .filter(|f| f.status.as_str() == "active")
            .count();
        assert_eq!(actives, 1, "round {round}");
    }
    assert_eq!(
        all_audit(s.as_ref()).await.len(),
        2,
        "one audit record per successful publish"
    );
}

async fn two_admins_demoting_each_other_at_once_leave_one(s: Arc<dyn Store>) {
    let admins = |s: Arc<dyn Store>| async move {
        s.list_users()
            .await
            .unwrap()
            .into_iter()
            .filter(|u| u.role == Role::Admin && u.active)
            .count()
    };
    let now = |s: Arc<dyn Store>, id: &'static str| async move {
        s.user_by_id(id).await.unwrap().unwrap()
    };
    // The only admin cannot step down, and a non-admin's change is never refused for it.
    let only = user("only", Role::Admin);
    s.create_user(&only, &[]).await.unwrap();
    for changed in [
        User {
            role: Role::Operator,
            ..only.clone()
        },
        User {
            active: false,
            ..only.clone()
        },
    ] {
        let e = s
            .update_user(
                &changed,
                only.updated_at,
                &[audit("user_role_changed", "user:only")],
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LastAdmin), "{e:?}");
    }
    assert!(
        all_audit(s.as_ref()).await.is_empty(),
        "a refusal leaves no audit"
    );
    let op = user("op", Role::Operator);
    s.create_user(&op, &[]).await.unwrap();
    let renamed = User {
        display_name: "Op".into(),
        ..op.clone()
    };
    s.update_user(&renamed, op.updated_at, &[audit("user_renamed", "user:op")])
        .await
        .unwrap();

    // Two admins demote each other at the same moment, again and again: one wins each time.
    s.create_user(&user("other", Role::Admin), &[])
        .await
        .unwrap();
    for round in 0..10i64 {
        assert_eq!(admins(s.clone()).await, 2, "round {round}");
        let mut tasks = Vec::new();
        for id in ["id-only", "id-other"] {
            let before = now(s.clone(), id).await;
            let demoted = User {
                role: Role::Analyst,
                updated_at: before.updated_at + Duration::seconds(1),
                ..before.clone()
            };
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.update_user(
                    &demoted,
                    before.updated_at,
                    &[audit("user_role_changed", "user:x")],
                )
                .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(StoreError::LastAdmin) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        assert_eq!(ok, 1, "round {round}");
        assert_eq!(admins(s.clone()).await, 1, "round {round}");
        // Both admins again for the next round.
        for id in ["id-only", "id-other"] {
            let before = now(s.clone(), id).await;
            if before.role != Role::Admin {
                let back = User {
                    role: Role::Admin,
                    updated_at: before.updated_at + Duration::seconds(1),
                    ..before.clone()
                };
                s.update_user(&back, before.updated_at, &[]).await.unwrap();
            }
        }
    }
}

// --- batches ---------------------------------------------------------------------------------

async fn batch_numbers_inserts_and_conditional_appends(s: Arc<dyn Store>) {
    assert_eq!(s.next_batch_seq("gold", 2026).await.unwrap(), 1);
    assert_eq!(s.next_batch_seq("gold", 2026).await.unwrap(), 2);
    assert_eq!(s.next_batch_seq("silver", 2026).await.unwrap(), 1);
    assert_eq!(s.next_batch_seq("gold", 2027).await.unwrap(), 1);
    let flow = published_flow(s.as_ref()).await;
    let b = new_batch(s.as_ref(), &flow, Priority::Normal, T0).await;
    assert_eq!(b.state.batch_number, "B-2026-0003");
    assert_eq!(s.batch(b.state.batch_id).await.unwrap(), Some(b.clone()));
    assert_eq!(s.batch(uuid::Uuid::new_v4()).await.unwrap(), None);
    assert!(s
        .batch_events(uuid::Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());

    // The same number again (another id): Duplicate.
    let id = uuid::Uuid::new_v4();
    let ev = BatchState::create(
        id,
        b.state.batch_number.clone(),
        &flow,
        Priority::Normal,
        &operator(),
        T0,
    )
    .unwrap();
    let rec = RecordedEvent {
        event_id: uuid::Uuid::new_v4(),
        seq: 1,
        at: T0,
        actor: EventActor::from(&operator()),
        event: ev,
    };
    let dup = BatchRecord::new(BatchState::from_created(&rec).unwrap(), &flow.content);
    assert!(matches!(
        s.insert_batch(&dup, &rec).await,
        Err(StoreError::Duplicate(_))
    ));

    let gen0 = s.report_generation().await.unwrap();
    let started = run(
        s.as_ref(),
        &b,
        &flow,
        BatchCommand::Start,
        T0 + Duration::minutes(1),
    )
    .await;
    assert_ne!(
        s.report_generation().await.unwrap(),
        gen0,
        "appends move the report generation"
    );
    assert_eq!(started.state.status, BatchStatus::InProgress);
    // A stale expected version: Conflict and nothing written.
    let (events, next) = decide(&b, &flow, BatchCommand::Start, T0 + Duration::minutes(2));
    assert!(matches!(
        s.append_batch_events(&next, b.state.version, &events, &[])
            .await,
        Err(StoreError::Conflict)
    ));
    // A batch that does not exist: Conflict too.
    let mut ghost = next.clone();
    ghost.state.batch_id = uuid::Uuid::new_v4();
    assert!(matches!(
        s.append_batch_events(&ghost, 1, &events, &[]).await,
        Err(StoreError::Conflict)
    ));

    let (events, next) = decide(
        &started,
        &flow,
        BatchCommand::CompleteStep {
            step_id: "receiving-inspect".into(),
            payload: metcon_shared::batch::StepPayload::Instruction { acknowledged: true },
        },
        T0 + Duration::minutes(3),
    );
    s.append_batch_events(&next, started.state.version, &events, &[])
        .await
        .unwrap();
    let weighed = run(
        s.as_ref(),
        &next,
        &flow,
        BatchCommand::RecordMassCheck {
            step_id: "receiving-weigh".into(),
            actual: Mass::parse("1000.2", "g").unwrap(),
            source: MassSource::Manual,
            note: Some("fineness=999.9".into()),
        },
        T0 + Duration::minutes(4),
    )
    .await;
    let stored = s.batch(b.state.batch_id).await.unwrap().unwrap();
    assert_eq!(stored, weighed);
    let events = s.batch_events(b.state.batch_id).await.unwrap();
    assert_eq!(events.len() as u64, weighed.state.version);
    assert_eq!(
        BatchState::replay(&events).unwrap(),
        weighed.state,
        "state is the fold of its events"
    );
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=weighed.state.version).collect::<Vec<_>>()
    );

    let board = s.wip_board().await.unwrap();
    assert_eq!(board.len(), 1);
    assert_eq!(board[0].station.as_deref(), Some("receiving"));
    assert_eq!(board[0].count, 1);
    assert_eq!(board[0].oldest_update, T0 + Duration::minutes(4));
}

async fn of_concurrent_appends_exactly_one_wins(s: Arc<dyn Store>) {
    let flow = published_flow(s.as_ref()).await;
    let b = new_batch(s.as_ref(), &flow, Priority::Normal, T0).await;
    let b = run(s.as_ref(), &b, &flow, BatchCommand::Start, T0).await;
    for round in 0..3 {
        let current = s.batch(b.state.batch_id).await.unwrap().unwrap();
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let s = s.clone();
                let (events, next) = decide(
                    &current,
                    &flow,
                    BatchCommand::RaiseFlag {
                        reason: format!("kiosk {i}"),
                    },
                    T0 + Duration::minutes(round),
                );
                let base = current.state.version;
                tokio::spawn(async move { s.append_batch_events(&next, base, &events, &[]).await })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(StoreError::Conflict) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(ok, 1, "round {round}");
        let after = s.batch(b.state.batch_id).await.unwrap().unwrap();
        let events = s.batch_events(b.state.batch_id).await.unwrap();
        assert_eq!(events.len() as u64, after.state.version);
        assert_eq!(after.state.version, current.state.version + 1);
    }
}

async fn appends_with_audit_commit_together_or_not_at_all(s: Arc<dyn Store>) {
    let flow = published_flow(s.as_ref()).await;
    let b = new_batch(s.as_ref(), &flow, Priority::High, T0).await;
    let b = run(s.as_ref(), &b, &flow, BatchCommand::Start, T0).await;
    let (events, next) = decide(
        &b,
        &flow,
        BatchCommand::Block {
            reason: "seal broken".into(),
        },
        T0,
    );
    s.append_batch_events(
        &next,
        b.state.version,
        &events,
        &[audit("batch_blocked", "batch:x")],
    )
    .await
    .unwrap();
    // The same again on the old version: refused, and its audit record is not written.
    let (events2, next2) = decide(
        &b,
        &flow,
        BatchCommand::Block {
            reason: "again".into(),
        },
        T0,
    );
    assert!(matches!(
        s.append_batch_events(
            &next2,
            b.state.version,
            &events2,
            &[audit("batch_blocked", "batch:y")]
        )
        .await,
        Err(StoreError::Conflict)
    ));
    let a = all_audit(s.as_ref()).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].entry.target, "batch:x");
    assert_eq!(s.batch(b.state.batch_id).await.unwrap().unwrap(), next);
    assert_eq!(s.audit_head().await.unwrap().unwrap().seq, 1);
}

async fn the_audit_chain_never_forks_under_concurrent_writers(s: Arc<dyn Store>) {
    let flow = published_flow(s.as_ref()).await;
    let mut tasks = Vec::new();
    for w in 0..6 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..8 {
                let r = s
                    .append_audit(&audit("login", &format!("user:w{w}-{i}")))
                    .await
                    .unwrap();
                assert_eq!(r.entry.target, format!("user:w{w}-{i}"));
            }
        }));
    }
    for w in 0..3 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..4 {
                let u = user(&format!("u{w}x{i}"), Role::Operator);
                s.create_user(
                    &u,
                    &[
                        audit("user_created", &u.username),
                        audit("note", "second record"),
                    ],
                )
                .await
                .unwrap();
            }
        }));
    }
    // Batch appends with audit records, on separate batches, at the same time.
    for w in 0..2 {
        let s = s.clone();
        let flow = flow.clone();
        tasks.push(tokio::spawn(async move {
            let mut b = new_batch(s.as_ref(), &flow, Priority::Normal, T0).await;
            let commands = [
                BatchCommand::Start,
                BatchCommand::Block {
                    reason: format!("w{w} hold"),
                },
                BatchCommand::Unblock {
                    reason: "released".into(),
                },
                BatchCommand::Block {
                    reason: format!("w{w} hold again"),
                },
            ];
            for (i, cmd) in commands.into_iter().enumerate() {
                let (events, next) = decide(&b, &flow, cmd, T0);
                s.append_batch_events(
                    &next,
                    b.state.version,
                    &events,
                    &[audit("flag_raised", &format!("batch:{w}-{i}"))],
                )
                .await
                .unwrap();
                b = next;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let records = all_audit(s.as_ref()).await;
    assert_eq!(records.len(), 6 * 8 + 3 * 4 * 2 + 2 * 4);
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=records.len() as u64).collect::<Vec<_>>()
    );
    let report = metcon_cloud::audit::verify(s.as_ref()).await.unwrap();
    assert!(report.ok, "{:?}", report.breaks);
    let head = s.audit_head().await.unwrap().unwrap();
    assert_eq!(head.seq, records.len() as u64);
    assert_eq!(head.hash, records.last().unwrap().hash);
    // Records from one call are consecutive.
    for w in records.windows(2) {
        if w[0].entry.action == "user_created" {
            assert_eq!(w[1].entry.action, "note");
        }
    }
}

async fn batch_listing_pages_and_filters(s: Arc<dyn Store>) {
    let flow = published_flow(s.as_ref()).await;
    let mut silver_content = metcon_cloud::demo::gold_flow();
    silver_content.pipeline = "silver".into();
    let mut silver = Flow::new_draft(
        "silver_refining".into(),
        1,
        silver_content,
        "admin".into(),
        T0,
    );
    s.insert_flow(&silver, &[]).await.unwrap();
    silver.publish(None, Some(T0), T0).unwrap();
    s.publish_flow(&silver, None, &[]).await.unwrap();
    let mut made = Vec::new();
    for i in 0..70 {
        let f = if i % 5 == 0 { &silver } else { &flow };
        let prio = if i % 7 == 0 {
            Priority::High
        } else {
            Priority::Normal
        };
        let at = T0 + Duration::minutes(i);
        let mut b = new_batch(s.as_ref(), f, prio, at).await;
        if i % 2 == 0 {
            b = run(s.as_ref(), &b, f, BatchCommand::Start, at).await;
        }
        if i % 6 == 0 {
            b = run(
                s.as_ref(),
                &b,
                f,
                BatchCommand::Block {
                    reason: "hold".into(),
                },
                at,
            )
            .await;
        }
        made.push(b);
    }
    let page1 = s
        .list_batches(&BatchFilter {
            page: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page1.total, 70);
    assert_eq!(page1.items.len(), PAGE_SIZE as usize);
    assert_eq!(page1.per_page, PAGE_SIZE);
    let page2 = s
        .list_batches(&BatchFilter {
            page: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page2.items.len(), 20);
    let page0 = s
        .list_batches(&BatchFilter {
            page: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page0.page, 1);
    // High priority first, then newest first.
    let order: Vec<(bool, OffsetDateTime)> = page1
        .items
        .iter()
        .chain(&page2.items)
        .map(|b| (b.state.priority != Priority::High, b.state.created_at))
        .collect();
    let mut want = order.clone();
    want.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    assert_eq!(order, want);
    let ids: std::collections::HashSet<_> = page1
        .items
        .iter()
        .chain(&page2.items)
        .map(|b| b.state.batch_id)
        .collect();
    assert_eq!(ids.len(), 70);

    let count =
        |pred: &dyn Fn(&BatchRecord) -> bool| made.iter().filter(|b| pred(b)).count() as u64;
    let q = |f: BatchFilter| {
        let s = s.clone();
        async move {
            s.list_batches(&BatchFilter { page: 1, ..f })
                .await
                .unwrap()
                .total
        }
    };
    assert_eq!(
        q(BatchFilter {
            status: Some(BatchStatus::Blocked),
            ..Default::default()
        })
        .await,
        count(&|b| b.state.status == BatchStatus::Blocked)
    );
    assert_eq!(
        q(BatchFilter {
            status: Some(BatchStatus::Created),
            ..Default::default()
        })
        .await,
        count(&|b| b.state.status == BatchStatus::Created)
    );
    assert_eq!(
        q(BatchFilter {
            pipeline: Some("silver".into()),
            ..Default::default()
        })
        .await,
        14
    );
    assert_eq!(
        q(BatchFilter {
            flow_id: Some("gold_refining".into()),
            ..Default::default()
        })
        .await,
        56
    );
    assert_eq!(
        q(BatchFilter {
            station: Some("receiving".into()),
            ..Default::default()
        })
        .await,
        70
    );
    assert_eq!(
        q(BatchFilter {
            stations_in: Some(vec![]),
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(
        q(BatchFilter {
            stations_in: Some(vec!["qc".into()]),
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(
        q(BatchFilter {
            stations_in: Some(vec!["receiving".into(), "qc".into()]),
            pipeline: Some("silver".into()),
            status: Some(BatchStatus::InProgress),
            ..Default::default()
        })
        .await,
        count(&|b| b.state.pipeline == "silver" && b.state.status == BatchStatus::InProgress)
    );
    let board = s.wip_board().await.unwrap();
    let by_status: std::collections::BTreeMap<&str, u64> =
        board.iter().map(|c| (c.status.as_str(), c.count)).collect();
    for status in [
        BatchStatus::Created,
        BatchStatus::InProgress,
        BatchStatus::Blocked,
    ] {
        assert_eq!(
            by_status.get(status.as_str()).copied().unwrap_or(0),
            count(&|b| b.state.status == status),
            "{status:?}"
        );
    }
}

// --- import and reports ----------------------------------------------------------------------

/// A report answer without backend row ids (which only break ties in a backend's order):
/// every ` id: <number>,` of the `Debug` text goes.
fn strip_ids(v: String) -> String {
    let mut parts = v.split(" id: ");
    let mut out = parts.next().unwrap_or("").to_string();
    for p in parts {
        let rest = p.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
        out.push_str(rest.strip_prefix(',').unwrap_or(rest));
    }
    out
}

async fn answers(s: &dyn Store, now: OffsetDateTime) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let day = (now - Duration::days(4)).date();
    let filters = vec![
        ReportFilter::default(),
        ReportFilter {
            station: Some("casting".into()),
            within: Some(false),
            ..Default::default()
        },
        ReportFilter {
            from: Some(day - Duration::days(3)),
            to: Some(day),
            pipeline: Some("gold".into()),
            ..Default::default()
        },
        ReportFilter {
            flow_id: Some("gen_gold_refining".into()),
            flow_version: Some(2),
            operator: Some("op-casting-1".into()),
            ..Default::default()
        },
        ReportFilter {
            kind: Some("out_of_tolerance".into()),
            ..Default::default()
        },
        ReportFilter {
            status: Some("blocked".into()),
            stuck_hours: Some(2),
            ..Default::default()
        },
    ];
    let windows = [
        Window::Offset {
            offset: 0,
            limit: 100,
        },
        Window::Offset {
            offset: 7,
            limit: 5,
        },
        Window::After {
            cursor: None,
            limit: 1_000_000,
        },
    ];
    for f in &filters {
        let k = format!("{f:?}");
        macro_rules! ask {
            ($name:literal, $e:expr) => {
                out.push((
                    format!("{} {k}", $name),
                    strip_ids(format!("{:?}", $e.unwrap())),
                ));
            };
        }
        ask!("generation>0", s.report_generation().await.map(|g| g > 0));
        ask!("mass_check_groups", s.mass_check_groups(f).await);
        ask!("wip_groups", s.wip_groups(f, now).await);
        ask!("duration_groups", s.duration_groups(f).await);
        ask!("exception_groups", s.exception_groups(f).await);
        ask!("balance_groups", s.balance_groups(f).await);
        for w in &windows {
            let k = format!("{k} {w:?}");
            macro_rules! rows {
                ($name:literal, $e:expr) => {
                    let r = $e.unwrap();
                    out.push((
                        format!("{} {k}", $name),
                        strip_ids(format!("{:?} next={:?}", r.rows, r.next.map(|c| c.key))),
                    ));
                };
            }
            rows!("mass_check_rows", s.mass_check_rows(f, w.clone()).await);
            rows!("wip_rows", s.wip_rows(f, now, w.clone()).await);
            rows!("visit_rows", s.visit_rows(f, w.clone()).await);
            rows!("exception_rows", s.exception_rows(f, w.clone()).await);
            rows!("balance_rows", s.balance_rows(f, w.clone()).await);
            rows!("weight_list_rows", s.weight_list_rows(f, w.clone()).await);
        }
    }
    // Keyset paging gives the same rows as one big page.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let r = s
            .mass_check_rows(
                &ReportFilter::default(),
                Window::After { cursor, limit: 37 },
            )
            .await
            .unwrap();
        paged.extend(r.rows.into_iter().map(|r| (r.batch_id, r.at)));
        match r.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.push(("keyset pages".into(), format!("{paged:?}")));
    // The CSV export's pages hold the same records as the typed rows, written cell by cell.
    let mut want = CsvWriter::default();
    let all = s
        .mass_check_rows(
            &ReportFilter::default(),
            Window::After {
                cursor: None,
                limit: 1_000_000,
            },
        )
        .await
        .unwrap();
    for r in &all.rows {
        let at = rows::rfc3339(r.at);
        rows::MassCheckCells::of(r, &at).write(&mut want);
    }
    let want = want.into_string();
    let (mut got, mut cursor, mut pages) = (String::new(), None, 0);
    loop {
        let (page, next) = s
            .mass_check_csv(
                &ReportFilter::default(),
                Window::After { cursor, limit: 37 },
                None,
                CsvWriter::default(),
            )
            .await
            .unwrap();
        got.push_str(&page.into_string());
        pages += 1;
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert!(pages > 2, "{pages} pages");
    assert_eq!(got, want);
    // Pages delimited ahead (where the store can) are ranges that add up to the same CSV.
    let f = ReportFilter::default();
    if s.mass_check_page_end(&f, None, 37).await.unwrap() != PageEnd::Unknown {
        let (mut ranged, mut start) = (String::new(), None);
        loop {
            let end = match s.mass_check_page_end(&f, start.clone(), 37).await.unwrap() {
                PageEnd::At(c) => Some(c),
                PageEnd::Last => None,
                PageEnd::Unknown => panic!("the store stopped delimiting pages"),
            };
            let window = Window::After {
                cursor: start,
                limit: u32::MAX,
            };
            let (page, _) = s
                .mass_check_csv(&f, window, end.clone(), CsvWriter::default())
                .await
                .unwrap();
            let page = page.into_string();
            assert!(end.is_none() || page.matches("\r\n").count() == 37);
            ranged.push_str(&page);
            match end {
                Some(c) => start = Some(c),
                None => break,
            }
        }
        assert_eq!(ranged, want);
    }
    out.push(("csv pages".into(), got));
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let r = s
            .balance_rows(
                &ReportFilter::default(),
                Window::After { cursor, limit: 41 },
            )
            .await
            .unwrap();
        paged.extend(
            r.rows
                .into_iter()
                .map(|r| (r.batch_id, r.seq, r.previous_e4)),
        );
        match r.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.push(("balance keyset pages".into(), format!("{paged:?}")));
    out
}

async fn imported_history_answers_every_report_like_sqlite(s: Arc<dyn Store>) {
    let now = datetime!(2026-06-30 12:00:00.5 UTC);
    let opts = Options {
        batches: 160,
        days: 20,
        seed: 7,
        now,
    };
    let summary = generate(s.clone(), &opts, |_| {}).await.unwrap();
    assert_eq!(summary.batches, 160);
    // The same history in a reference SQLite store.
    let reference = sqlite();
    generate(reference.store.clone(), &opts, |_| {})
        .await
        .unwrap();
    let got = answers(s.as_ref(), now).await;
    let want = answers(reference.store.as_ref(), now).await;
    assert_eq!(got.len(), want.len());
    for ((k, g), (_, w)) in got.iter().zip(&want) {
        assert_eq!(g, w, "{k}");
    }
    assert!(
        want.iter()
            .any(|(k, v)| k.starts_with("mass_check_rows") && v.len() > 1000),
        "the history has rows"
    );
    // Whole histories come back as imported.
    let page = reference
        .store
        .list_batches(&BatchFilter {
            page: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    for b in page.items.iter().take(10) {
        let id = b.state.batch_id;
        assert_eq!(s.batch(id).await.unwrap().as_ref(), Some(b));
        assert_eq!(
            s.batch_events(id).await.unwrap(),
            reference.store.batch_events(id).await.unwrap()
        );
    }
    let mine = s
        .list_batches(&BatchFilter {
            page: 2,
            pipeline: Some("gold".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let theirs = reference
        .store
        .list_batches(&BatchFilter {
            page: 2,
            pipeline: Some("gold".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.total, theirs.total);
    assert_eq!(
        s.wip_board().await.unwrap(),
        reference.store.wip_board().await.unwrap()
    );
    // A batch number allocated after the import does not reuse imported numbers.
    let next = s.next_batch_seq("gold", now.year()).await.unwrap();
    assert_eq!(
        next,
        reference
            .store
            .next_batch_seq("gold", now.year())
            .await
            .unwrap()
    );
}

// --- the device fleet ------------------------------------------------------------------------

mod fleet {
    use metcon_cloud::store::devices::*;
    use metcon_shared::calibration::{CalibrationKind, CalibrationOutcome, CalibrationRecord};
    use metcon_shared::device::{CameraSettings, ScaleSettings};
    use metcon_shared::mass::MassUnit;
    use metcon_shared::reading::{sign, Measurement, PublicKeyHex, Reading, FORMAT_VERSION};
    use metcon_shared::topic::{DeviceConfig, DeviceId, DeviceStatus, Presence as Online};
    use rust_decimal::Decimal;
    use time::OffsetDateTime;

    use super::T0;

    pub fn key(n: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[n; 32])
    }

    pub fn public(n: u8) -> PublicKeyHex {
        PublicKeyHex(key(n).verifying_key().to_bytes())
    }

    pub fn device(id: &str, station: &str) -> Device {
        let scale: ScaleSettings = serde_json::from_value(
            serde_json::json!({ "protocol": "mt-sics", "port": "/dev/ttyUSB0" }),
        )
        .unwrap();
        Device {
            id: DeviceId::parse(id).unwrap(),
            name: format!("Scale {id}"),
            site: "plant-1".into(),
            station_id: station.into(),
            scale,
            camera: CameraSettings::None,
            camera_region: None,
            config: DeviceConfig::default(),
            state: DeviceState::Pending,
            broker_secret_hash: None,
            hostname: None,
            agent_version: None,
            created_at: T0,
            created_by: "admin".into(),
            enrolled_at: None,
            revoked_at: None,
            revoked_reason: None,
            updated_at: T0,
        }
    }

    /// A reading signed with key `k`, `grams` on the display.
    pub fn reading(device: &str, seq: u64, grams: &str, k: u8, at: OffsetDateTime) -> NewReading {
        let reading = Reading {
            v: FORMAT_VERSION,
            device: DeviceId::parse(device).unwrap(),
            seq,
            measurement: Measurement::Weight {
                net: grams.parse::<Decimal>().unwrap(),
                gross: None,
                tare: None,
                unit: MassUnit::G,
                stable: true,
            },
            scale_serial: Some("B123456789".into()),
            raw_line: format!("S S {grams:>10} g"),
            device_time: at,
            frame_sha256: None,
            capture_request: None,
        };
        let envelope = sign(&reading, &key(k)).unwrap().as_bytes().to_vec();
        NewReading {
            reading,
            envelope,
            received_at: at,
        }
    }

    pub fn status(online: bool) -> DeviceStatus {
        DeviceStatus {
            presence: if online {
                Online::Online
            } else {
                Online::Offline
            },
            outbox_depth: 3,
            outbox_full: false,
            last_seq: Some(2),
            scale_connected: online,
            agent_version: Some("0.1.0".into()),
            device_time: Some(T0),
            last_capture_request: None,
        }
    }

    pub fn calibration(id: &str, device: &str, at: OffsetDateTime) -> CalibrationRecord {
        CalibrationRecord {
            id: id.into(),
            device_id: device.into(),
            kind: CalibrationKind::RoutineTest,
            outcome: CalibrationOutcome::Pass,
            performed_at: at,
            next_due: (at + time::Duration::days(30)).date(),
            scale_serial: Some("B123456789".into()),
            reference: "F1 set 4711".into(),
            performed_by: "metrologist".into(),
            notes: None,
            recorded_by: "admin".into(),
            recorded_at: at,
        }
    }

    pub fn enrollment(k: u8, at: OffsetDateTime) -> Enrollment {
        Enrollment {
            public_key: public(k),
            broker_secret_hash: "ab".repeat(32),
            agent_version: "0.1.0".into(),
            hostname: Some("edge-1".into()),
            at,
        }
    }
}

async fn devices_register_enroll_once_and_rotate_keys(s: Arc<dyn Store>) {
    use fleet::*;
    use metcon_cloud::store::devices::*;
    let d = device("scale-1", "receiving");
    s.create_device(&d, &[audit("device.create", "device:scale-1")])
        .await
        .unwrap();
    assert!(matches!(
        s.create_device(&d, &[]).await,
        Err(StoreError::Duplicate(_))
    ));
    let ghost = device("ghost", "receiving");
    assert!(matches!(
        s.update_device(&ghost, ghost.updated_at, &[]).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.device("scale-1").await.unwrap(), Some(d.clone()));
    // A revoke and an edit read at the same moment: the second write is refused, so the
    // edit cannot bring the revoked device back.
    let revoked = Device {
        state: DeviceState::Revoked,
        updated_at: d.updated_at + Duration::seconds(1),
        ..d.clone()
    };
    let edited = Device {
        name: "renamed while revoked".into(),
        updated_at: d.updated_at + Duration::seconds(2),
        ..d.clone()
    };
    s.update_device(&revoked, d.updated_at, &[]).await.unwrap();
    assert!(matches!(
        s.update_device(&edited, d.updated_at, &[]).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.device("scale-1").await.unwrap(), Some(revoked.clone()));
    s.update_device(&d, revoked.updated_at, &[]).await.unwrap();
    assert_eq!(s.device("scale-1").await.unwrap(), Some(d.clone()));
    assert_eq!(s.device("ghost").await.unwrap(), None);
    s.create_device(&device("scale-0", "assay"), &[])
        .await
        .unwrap();
    let ids: Vec<String> = s
        .list_devices()
        .await
        .unwrap()
        .iter()
        .map(|d| d.id.to_string())
        .collect();
    assert_eq!(ids, ["scale-0", "scale-1"]);

    // Codes: a newer code replaces an unused older one; expired, used and unknown refuse.
    let code = |hash: &str, expires: OffsetDateTime| EnrollmentCode {
        code_hash: hash.into(),
        device_id: "scale-1".into(),
        created_by: "admin".into(),
        created_at: T0,
        expires_at: expires,
    };
    s.create_enrollment_code(&code("old", T0 + Duration::hours(1)), &[])
        .await
        .unwrap();
    s.create_enrollment_code(&code("new", T0 + Duration::hours(1)), &[])
        .await
        .unwrap();
    let at = T0 + Duration::minutes(5);
    let ok = [audit("device.enroll", "")];
    assert_eq!(
        s.consume_enrollment_code("old", &enrollment(1, at), &ok)
            .await
            .unwrap(),
        Err(EnrollRefusal::Unknown),
        "the replaced code no longer works"
    );
    assert_eq!(
        s.consume_enrollment_code("nope", &enrollment(1, at), &ok)
            .await
            .unwrap(),
        Err(EnrollRefusal::Unknown)
    );
    let late = T0 + Duration::hours(2);
    assert_eq!(
        s.consume_enrollment_code("new", &enrollment(1, late), &ok)
            .await
            .unwrap(),
        Err(EnrollRefusal::Expired)
    );
    let active = s
        .consume_enrollment_code("new", &enrollment(1, at), &ok)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.state, DeviceState::Active);
    assert_eq!(active.enrolled_at, Some(at));
    assert_eq!(
        s.consume_enrollment_code("new", &enrollment(2, at), &ok)
            .await
            .unwrap(),
        Err(EnrollRefusal::Used),
        "a code works once"
    );
    let last = all_audit(&*s).await.pop().unwrap();
    assert_eq!(
        (last.entry.action.as_str(), last.entry.target.as_str()),
        ("device.enroll", "device:scale-1")
    );

    // Keys: the enrollment key from 0, a rotation from a later sequence only.
    let k = s.device_keys("scale-1").await.unwrap();
    assert_eq!(k.len(), 1);
    assert_eq!((k[0].from_seq, &k[0].public_key), (0, &public(1)));
    let rotated = DeviceKeyRecord {
        device_id: "scale-1".into(),
        public_key: public(2),
        from_seq: 10,
        registered_at: at,
    };
    s.add_device_key(&rotated, &[]).await.unwrap();
    let earlier = DeviceKeyRecord {
        from_seq: 5,
        public_key: public(3),
        ..rotated.clone()
    };
    assert!(matches!(
        s.add_device_key(&earlier, &[]).await,
        Err(StoreError::Duplicate(_))
    ));
    let k = s.device_keys("scale-1").await.unwrap();
    assert_eq!(
        k.iter().map(|k| k.from_seq).collect::<Vec<_>>(),
        [0, 10],
        "oldest first"
    );
}

async fn readings_group_commit_bind_once_and_count(s: Arc<dyn Store>) {
    use fleet::*;
    use metcon_cloud::store::devices::*;
    s.create_device(&device("scale-1", "receiving"), &[])
        .await
        .unwrap();
    let batch: Vec<NewReading> = (1..=5)
        .map(|n| {
            reading(
                "scale-1",
                n,
                &format!("{n}00.01"),
                1,
                T0 + Duration::seconds(n as i64),
            )
        })
        .collect();
    let out = s.insert_readings(&batch).await.unwrap();
    assert!(out.iter().all(|o| *o == InsertOutcome::Inserted), "{out:?}");
    // A re-delivery and a forged different envelope for a known sequence number.
    let again = s
        .insert_readings(&[
            batch[1].clone(),
            reading("scale-1", 3, "999.99", 1, T0),
            reading("scale-1", 6, "600.00", 1, T0 + Duration::seconds(6)),
        ])
        .await
        .unwrap();
    assert_eq!(
        again,
        [
            InsertOutcome::Duplicate,
            InsertOutcome::Conflict,
            InsertOutcome::Inserted
        ]
    );
    let r3 = s.reading("scale-1", 3).await.unwrap().unwrap();
    assert_eq!(r3.reading, batch[2].reading, "the first envelope stands");
    assert_eq!(s.reading("scale-1", 99).await.unwrap(), None);
    let newest: Vec<u64> = s
        .list_readings("scale-1", false, 3)
        .await
        .unwrap()
        .iter()
        .map(|r| r.reading.seq)
        .collect();
    assert_eq!(newest, [6, 5, 4]);

    // Arm a step of a real batch, bind reading 4 to it: events, binding and disarm together.
    let flow = published_flow(&*s).await;
    let b = new_batch(&*s, &flow, Priority::Normal, T0).await;
    let arm = Arm {
        device_id: "scale-1".into(),
        batch_id: b.state.batch_id,
        step_id: "receiving-weigh".into(),
        station_id: "receiving".into(),
        armed_by: "op".into(),
        request_id: "req-1".into(),
        armed_at: T0,
    };
    s.arm(&arm, &[]).await.unwrap();
    assert_eq!(
        s.arm_for_device("scale-1").await.unwrap(),
        Some(arm.clone())
    );
    assert_eq!(
        s.arms_for_batch(b.state.batch_id).await.unwrap(),
        std::slice::from_ref(&arm)
    );
    assert_eq!(s.list_arms().await.unwrap().len(), 1);
    let (events, next) = decide(&b, &flow, BatchCommand::Start, T0 + Duration::seconds(10));
    let binding = ReadingBinding {
        batch_id: b.state.batch_id,
        step_id: "receiving-weigh".into(),
        event_seq: events.last().unwrap().seq,
        kind: BindingKind::Armed,
        by: "op".into(),
        at: T0 + Duration::seconds(10),
    };
    // A stale batch version refuses and changes nothing.
    assert!(matches!(
        s.bind_reading(
            "scale-1",
            4,
            &binding,
            &next,
            b.state.version + 7,
            &events,
            &[]
        )
        .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.reading("scale-1", 4).await.unwrap().unwrap().binding,
        None
    );
    assert!(s.arm_for_device("scale-1").await.unwrap().is_some());
    s.bind_reading("scale-1", 4, &binding, &next, b.state.version, &events, &[])
        .await
        .unwrap();
    assert_eq!(
        s.reading("scale-1", 4).await.unwrap().unwrap().binding,
        Some(binding.clone())
    );
    assert_eq!(s.arm_for_device("scale-1").await.unwrap(), None);
    assert_eq!(
        s.batch(b.state.batch_id)
            .await
            .unwrap()
            .unwrap()
            .state
            .version,
        next.state.version
    );
    // Bound once: a second binding of the same reading is refused.
    let (events2, next2) = decide(
        &next,
        &flow,
        BatchCommand::Block {
            reason: "test".into(),
        },
        T0 + Duration::seconds(11),
    );
    assert!(matches!(
        s.bind_reading(
            "scale-1",
            4,
            &binding,
            &next2,
            next.state.version,
            &events2,
            &[]
        )
        .await,
        Err(StoreError::Conflict)
    ));
    let unbound: Vec<u64> = s
        .list_readings("scale-1", true, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.reading.seq)
        .collect();
    assert_eq!(unbound, [6, 5, 3, 2, 1]);
    s.arm(&arm, &[]).await.unwrap();
    s.disarm("scale-1", uuid::Uuid::new_v4()).await.unwrap();
    assert!(
        s.arm_for_device("scale-1").await.unwrap().is_some(),
        "another batch's disarm"
    );
    s.disarm("scale-1", b.state.batch_id).await.unwrap();
    assert_eq!(s.arm_for_device("scale-1").await.unwrap(), None);

    let counts = s.device_counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].readings, counts[0].unbound, counts[0].last_seq),
        (6, 5, Some(6))
    );
    assert_eq!(counts[0].last_reading_at, Some(T0 + Duration::seconds(6)));
}

async fn rejections_quarantine_calibrations_and_presence(s: Arc<dyn Store>) {
    use fleet::*;
    use metcon_cloud::store::devices::*;
    s.create_device(&device("scale-1", "receiving"), &[])
        .await
        .unwrap();
    let rej = |at: OffsetDateTime, reason: &str, seq: Option<u64>, q: Option<Vec<u8>>| Rejection {
        at,
        device_id: Some("scale-1".into()),
        topic: "metcon/v1/dev/scale-1/reading".into(),
        reason: reason.into(),
        detail: "details".into(),
        size: 120,
        payload_sha256: "cd".repeat(32),
        seq,
        quarantined: q,
    };
    s.record_rejections(
        &[
            rej(T0, "bad_signature", Some(7), Some(vec![1, 2, 3])),
            rej(
                T0 + Duration::minutes(1),
                "bad_signature",
                Some(3),
                Some(vec![4]),
            ),
            rej(T0 + Duration::minutes(2), "replay", Some(2), None),
            Rejection {
                device_id: None,
                topic: "junk".into(),
                ..rej(T0 + Duration::days(2), "bad_topic", None, None)
            },
        ],
        &[audit("ingest.reject", "device:scale-1")],
    )
    .await
    .unwrap();
    assert_eq!(
        s.take_quarantined("scale-1", 5).await.unwrap(),
        [vec![1, 2, 3]],
        "only from the rotation's sequence on"
    );
    assert!(
        s.take_quarantined("scale-1", 5).await.unwrap().is_empty(),
        "released once"
    );
    let counts = s
        .rejection_counts(Some(T0), Some(T0 + Duration::days(1)))
        .await
        .unwrap();
    let counts: Vec<(Option<String>, String, u64)> = counts
        .into_iter()
        .map(|c| (c.device_id, c.reason, c.count))
        .collect();
    assert_eq!(
        counts,
        [
            (Some("scale-1".into()), "bad_signature".into(), 2),
            (Some("scale-1".into()), "replay".into(), 1)
        ]
    );
    assert_eq!(s.rejection_counts(None, None).await.unwrap().len(), 3);

    // Calibrations are kept oldest first; an id is unique.
    let c2 = calibration("cal-2", "scale-1", T0 + Duration::days(1));
    s.add_calibration(&c2, &[]).await.unwrap();
    let c1 = calibration("cal-1", "scale-1", T0);
    s.add_calibration(&c1, &[audit("calibration.record", "device:scale-1")])
        .await
        .unwrap();
    assert!(matches!(
        s.add_calibration(&c1, &[]).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(s.calibrations("scale-1").await.unwrap(), [c1, c2]);

    // Presence: the latest status is kept; only transitions become changes.
    for (i, online) in [true, true, false, true].into_iter().enumerate() {
        s.record_presence(&Presence {
            device_id: "scale-1".into(),
            status: status(online),
            received_at: T0 + Duration::minutes(10 * i as i64),
        })
        .await
        .unwrap();
    }
    let p = s.presences().await.unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].received_at, T0 + Duration::minutes(30));
    let changes: Vec<(bool, OffsetDateTime)> = s
        .presence_changes(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.online, c.at))
        .collect();
    assert_eq!(
        changes,
        [
            (true, T0),
            (false, T0 + Duration::minutes(20)),
            (true, T0 + Duration::minutes(30))
        ]
    );
    let windowed = s
        .presence_changes(
            Some(T0 + Duration::minutes(15)),
            Some(T0 + Duration::minutes(25)),
        )
        .await
        .unwrap();
    assert_eq!(windowed.len(), 1);
}

/// Export → import into a fresh SQLite store → export again: every device record survives
/// byte for byte, whichever backend wrote the first file.
async fn device_fleet_survives_export_and_import(s: Arc<dyn Store>) {
    use fleet::*;
    use metcon_cloud::store::devices::*;
    use metcon_cloud::store::snapshot::SnapshotStore;
    s.create_device(&device("scale-1", "receiving"), &[])
        .await
        .unwrap();
    s.create_device(&device("scale-2", "assay"), &[])
        .await
        .unwrap();
    s.create_enrollment_code(
        &EnrollmentCode {
            code_hash: "h1".into(),
            device_id: "scale-1".into(),
            created_by: "admin".into(),
            created_at: T0,
            expires_at: T0 + Duration::hours(1),
        },
        &[],
    )
    .await
    .unwrap();
    s.consume_enrollment_code("h1", &enrollment(1, T0), &[audit("device.enroll", "")])
        .await
        .unwrap()
        .unwrap();
    s.create_enrollment_code(
        &EnrollmentCode {
            code_hash: "h2".into(),
            device_id: "scale-2".into(),
            created_by: "admin".into(),
            created_at: T0,
            expires_at: T0 + Duration::hours(1),
        },
        &[],
    )
    .await
    .unwrap();
    s.add_device_key(
        &DeviceKeyRecord {
            device_id: "scale-1".into(),
            public_key: public(2),
            from_seq: 3,
            registered_at: T0,
        },
        &[],
    )
    .await
    .unwrap();
    let readings: Vec<NewReading> = (1..=4)
        .map(|n| {
            reading(
                "scale-1",
                n,
                "148.30",
                if n < 3 { 1 } else { 2 },
                T0 + Duration::seconds(n as i64),
            )
        })
        .collect();
    s.insert_readings(&readings).await.unwrap();
    let flow = published_flow(&*s).await;
    let b = new_batch(&*s, &flow, Priority::High, T0).await;
    let (events, next) = decide(&b, &flow, BatchCommand::Start, T0 + Duration::seconds(5));
    let binding = ReadingBinding {
        batch_id: b.state.batch_id,
        step_id: "receiving-weigh".into(),
        event_seq: 2,
        kind: BindingKind::Attached,
        by: "op".into(),
        at: T0 + Duration::seconds(5),
    };
    s.bind_reading("scale-1", 2, &binding, &next, b.state.version, &events, &[])
        .await
        .unwrap();
    s.arm(
        &Arm {
            device_id: "scale-1".into(),
            batch_id: b.state.batch_id,
            step_id: "receiving-weigh".into(),
            station_id: "receiving".into(),
            armed_by: "op".into(),
            request_id: "req-9".into(),
            armed_at: T0,
        },
        &[],
    )
    .await
    .unwrap();
    s.add_calibration(&calibration("cal-1", "scale-1", T0), &[])
        .await
        .unwrap();
    for (i, online) in [true, false].into_iter().enumerate() {
        s.record_presence(&Presence {
            device_id: "scale-1".into(),
            status: status(online),
            received_at: T0 + Duration::minutes(i as i64),
        })
        .await
        .unwrap();
    }
    s.record_rejections(
        &[Rejection {
            at: T0,
            device_id: Some("scale-1".into()),
            topic: "metcon/v1/dev/scale-1/reading".into(),
            reason: "bad_signature".into(),
            detail: "signature does not verify".into(),
            size: 3,
            payload_sha256: "ef".repeat(32),
            seq: Some(9),
            quarantined: Some(vec![9, 9, 9]),
        }],
        &[audit("ingest.reject", "device:scale-1")],
    )
    .await
    .unwrap();

    let mut evidence = photo(b.state.batch_id, &"c".repeat(64), T0);
    evidence.event_seq = Some(2);
    s.insert_photo(&evidence, &[]).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let bar = indicatif::ProgressBar::hidden();
    let first = dir.path().join("first.jsonl");
    let counts = metcon_cloud::transfer::export(&*s, &first, &bar)
        .await
        .unwrap();
    assert_eq!(counts.photos, 1);
    assert_eq!(
        (
            counts.devices,
            counts.device_keys,
            counts.enrollment_codes,
            counts.readings,
            counts.rejections,
            counts.calibrations,
            counts.arms,
            counts.presences,
            counts.presence_changes
        ),
        (2, 2, 2, 4, 1, 1, 1, 1, 2)
    );
    let target = SqliteStore::open(&dir.path().join("copy.db")).unwrap();
    let loaded = metcon_cloud::transfer::import(&target, &first, &bar)
        .await
        .unwrap();
    assert_eq!(loaded, counts);
    let second = dir.path().join("second.jsonl");
    metcon_cloud::transfer::export(&target, &second, &bar)
        .await
        .unwrap();
    let (a, b2) = (
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
    );
    assert!(a == b2, "the copy exports different bytes");
    use metcon_cloud::store::photos::PhotoStore;
    assert_eq!(target.photo(evidence.id).await.unwrap(), Some(evidence));

    // The copy behaves like the original: evidence, binding, quarantine, stats.
    let r = target.reading("scale-1", 2).await.unwrap().unwrap();
    assert_eq!(r.binding, Some(binding));
    assert_eq!(
        r.envelope_sha256,
        s.reading("scale-1", 2)
            .await
            .unwrap()
            .unwrap()
            .envelope_sha256
    );
    assert_eq!(
        target.take_quarantined("scale-1", 0).await.unwrap(),
        [vec![9, 9, 9]]
    );
    assert_eq!(
        target.device_counts().await.unwrap(),
        s.device_counts().await.unwrap()
    );
    assert_eq!(
        target
            .insert_readings(&[readings[0].clone()])
            .await
            .unwrap(),
        [InsertOutcome::Duplicate],
        "replays are still recognised after a move"
    );
    assert_eq!(
        target
            .consume_enrollment_code("h2", &enrollment(5, T0), &[audit("device.enroll", "")])
            .await
            .unwrap()
            .unwrap()
            .state,
        DeviceState::Active,
        "a pending code still works once after a move"
    );
    assert_eq!(target.snapshot_counts().await.unwrap().device_keys, 3);
}

fn photo(batch: uuid::Uuid, sha: &str, at: OffsetDateTime) -> photos::PhotoRecord {
    photos::PhotoRecord {
        id: uuid::Uuid::new_v4(),
        sha256: sha.into(),
        content_type: "image/jpeg".into(),
        size_bytes: 245_123,
        width: 1920,
        height: 1080,
        exif: [("make".to_string(), "METCON".to_string())].into(),
        source: photos::PhotoSource::Upload {
            user_id: "u-1".into(),
            username: "operator".into(),
        },
        batch_id: Some(batch),
        step_id: Some("weigh".into()),
        event_seq: None,
        ocr: Some(photos::OcrResult {
            provider: "builtin".into(),
            outcome: photos::OcrOutcome::Accepted,
            raw_text: "0148.30".into(),
            value: Some(rust_decimal::Decimal::new(14830, 2)),
            decimals: Some(2),
            confidence: rust_decimal::Decimal::new(9712, 4),
            region: Some(photos::Region {
                x: 10,
                y: 20,
                w: 300,
                h: 90,
            }),
            elapsed_ms: 12,
            error: None,
        }),
        uploaded_at: at,
    }
}

async fn photo_records_are_found_by_batch_and_digest_and_link_once(s: Arc<dyn Store>) {
    let (b1, b2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let t0 = datetime!(2026-03-01 09:00 UTC);
    let (sha_a, sha_b) = ("a".repeat(64), "b".repeat(64));
    let first = photo(b1, &sha_a, t0);
    let second = photo(b1, &sha_b, t0 + Duration::minutes(1));
    // The same frame is evidence twice (two batches).
    let again = photo(b2, &sha_a, t0 + Duration::minutes(2));
    s.insert_photo(&second, &[audit("photo_uploaded", "batch:1")])
        .await
        .unwrap();
    s.insert_photo(&first, &[]).await.unwrap();
    s.insert_photo(&again, &[]).await.unwrap();
    assert!(matches!(
        s.insert_photo(&first, &[]).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(s.photo(first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(s.photo(uuid::Uuid::new_v4()).await.unwrap(), None);
    let of_b1 = s.photos_for_batch(b1).await.unwrap();
    assert_eq!(of_b1, vec![first.clone(), second.clone()], "oldest first");
    let of_a = s.photos_by_sha256(&sha_a).await.unwrap();
    assert_eq!(
        of_a.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![first.id, again.id]
    );
    // The event link is set once; the same link again is fine, another is a conflict.
    s.link_photo_event(first.id, 7).await.unwrap();
    s.link_photo_event(first.id, 7).await.unwrap();
    assert!(matches!(
        s.link_photo_event(first.id, 8).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.link_photo_event(uuid::Uuid::new_v4(), 1).await,
        Err(StoreError::NotFound(_))
    ));
    let linked = s.photo(first.id).await.unwrap().unwrap();
    assert_eq!(linked.event_seq, Some(7));
    assert_eq!(linked.ocr, first.ocr, "exact decimals survive");
    // The insert's audit record went in with it.
    let audits = all_audit(s.as_ref()).await;
    assert!(audits.iter().any(|a| a.entry.action == "photo_uploaded"));
}

async fn the_latest_frame_of_a_device_is_found(s: Arc<dyn Store>) {
    let t0 = datetime!(2026-03-01 09:00 UTC);
    let frame = |device: &str, seq: u64, at: OffsetDateTime| {
        let mut p = photo(uuid::Uuid::new_v4(), &format!("{seq:064x}"), at);
        p.source = photos::PhotoSource::Device {
            device_id: device.into(),
            seq,
        };
        p
    };
    assert_eq!(s.latest_device_photo("scale-01").await.unwrap(), None);
    let older = frame("scale-01", 3, t0);
    let newer = frame("scale-01", 9, t0 + Duration::minutes(5));
    let other = frame("scale-02", 4, t0 + Duration::minutes(9));
    // An upload by a user is never a device's frame, even a later one.
    let upload = photo(
        uuid::Uuid::new_v4(),
        &"e".repeat(64),
        t0 + Duration::minutes(20),
    );
    for p in [&newer, &older, &other, &upload] {
        s.insert_photo(p, &[]).await.unwrap();
    }
    assert_eq!(
        s.latest_device_photo("scale-01").await.unwrap(),
        Some(newer)
    );
    assert_eq!(
        s.latest_device_photo("scale-02").await.unwrap(),
        Some(other)
    );
    assert_eq!(s.latest_device_photo("scale-03").await.unwrap(), None);
}

/// The audit viewer's search: exact actor and action, target as plain text (a `%` or `.`
/// is not a pattern), whole UTC days, newest first with a `before` cursor, oldest first
/// with `after`; the same answers on both backends.
async fn the_audit_search_filters_and_pages_newest_first(s: Arc<dyn Store>) {
    let day1 = datetime!(2026-03-01 23:59:59.9 UTC);
    let day2 = datetime!(2026-03-02 00:00 UTC);
    let entry = |at, actor: &str, action: &str, target: &str| NewAudit {
        at,
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        details: serde_json::json!({}),
        ip: None,
    };
    for e in [
        entry(day1, "alice", "user_deactivated", "user:bob"),
        entry(day1, "alice", "flow_published", "flow:gold@1"),
        entry(day2, "carol", "user_deactivated", "user:b%b"),
        entry(day2, "alice", "user_deactivated", "user:bobby"),
        entry(day2, "alice", "batch_created", "batch:B-2026-0001"),
    ] {
        s.append_audit(&e).await.unwrap();
    }
    let seqs = |v: Vec<AuditRecord>| v.into_iter().map(|r| r.seq).collect::<Vec<_>>();
    let all = seqs(
        s.audit_search(&AuditFilter::default(), AuditCursor::Before(None), 100)
            .await
            .unwrap(),
    );
    assert_eq!(all, vec![5, 4, 3, 2, 1]);
    let deactivations = AuditFilter {
        action: Some("user_deactivated".into()),
        ..AuditFilter::default()
    };
    let by = |f: &AuditFilter, c| {
        let s = s.clone();
        let f = f.clone();
        async move { seqs(s.audit_search(&f, c, 100).await.unwrap()) }
    };
    assert_eq!(
        by(&deactivations, AuditCursor::Before(None)).await,
        vec![4, 3, 1]
    );
    // Pages of two, newest first, and the cursor carries on.
    let page1 = seqs(
        s.audit_search(&deactivations, AuditCursor::Before(None), 2)
            .await
            .unwrap(),
    );
    assert_eq!(page1, vec![4, 3]);
    assert_eq!(
        by(&deactivations, AuditCursor::Before(Some(3))).await,
        vec![1]
    );
    assert_eq!(by(&deactivations, AuditCursor::After(1)).await, vec![3, 4]);
    let alice = AuditFilter {
        actor: Some("alice".into()),
        ..deactivations.clone()
    };
    assert_eq!(by(&alice, AuditCursor::Before(None)).await, vec![4, 1]);
    // Target text: a substring, and `%` is only a character.
    let bob = AuditFilter {
        target: Some("user:bob".into()),
        ..AuditFilter::default()
    };
    assert_eq!(by(&bob, AuditCursor::Before(None)).await, vec![4, 1]);
    // … unless asked for exactly that target.
    let only_bob = AuditFilter {
        target_exact: true,
        ..bob.clone()
    };
    assert_eq!(by(&only_bob, AuditCursor::Before(None)).await, vec![1]);
    let part = AuditFilter {
        target: Some("user:bo".into()),
        target_exact: true,
        ..AuditFilter::default()
    };
    assert!(by(&part, AuditCursor::Before(None)).await.is_empty());
    let percent = AuditFilter {
        target: Some("b%b".into()),
        ..AuditFilter::default()
    };
    assert_eq!(by(&percent, AuditCursor::Before(None)).await, vec![3]);
    // Whole UTC days: the last tenth of a second of day 1 is day 1.
    let first_day = AuditFilter {
        to: Some(day1.date()),
        ..AuditFilter::default()
    };
    assert_eq!(by(&first_day, AuditCursor::Before(None)).await, vec![2, 1]);
    let second_day = AuditFilter {
        from: Some(day2.date()),
        to: Some(day2.date()),
        ..AuditFilter::default()
    };
    assert_eq!(
        by(&second_day, AuditCursor::Before(None)).await,
        vec![5, 4, 3]
    );
}
