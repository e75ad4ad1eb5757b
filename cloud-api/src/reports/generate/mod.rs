//! The data generator behind `metcon-cloud generate`: realistic history for demos and
//! benchmarks, made through the real domain. Every event comes from `BatchState::decide` and
//! is folded with `apply`, so generated batches obey every rule live ones do; they are stored
//! with `Store::import_batches` in large transactions.
//!
//! The history: N batches over M days on two pipelines (gold on a flow with two versions,
//! silver), five stations, operators scoped to their stations, supervisors deciding flags.
//! Masses follow the lot through the process (receiving ± 0.02 %, refining loss ≈ 0.5 %,
//! casting loss ≈ 0.5 %, QC re-weigh ± 0.05 g) against the flows' fixed expected masses and
//! tolerances, which gives a few per cent out of tolerance; 85 % of those flags are
//! approved, the rest rejected and re-weighed. A few batches get manual flags, blocks,
//! admin overrides; 2 % of weighings are typed in by hand, 8 % read by OCR. The assayed
//! fineness is recorded on the casting weighing (`fineness=…` in its note). Batches whose
//! timeline reaches the present stay unfinished, which fills the WIP board. Same seed, same
//! history.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use metcon_shared::batch_number::BatchNumber;
use metcon_shared::flow::{Flow, FlowContent, Station, Step, StepKind};
use metcon_shared::mass::MassUnit;
use metcon_shared::role::Role;
use metcon_shared::tolerance::Tolerance;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

use crate::store::{ImportedBatch, NewAudit, Store, User};

mod batch;
use batch::{simulate, People};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    pub batches: u64,
    pub days: u32,
    pub seed: u64,
    /// The present: history ends here.
    pub now: OffsetDateTime,
}

/// What was generated.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub batches: u64,
    pub events: u64,
    pub mass_checks: u64,
    pub out_of_tolerance: u64,
    pub ocr_mismatches: u64,
}

const STATIONS: [&str; 5] = ["receiving", "refining", "assay", "casting", "qc"];
const GOLD: &str = "gen_gold_refining";
const SILVER: &str = "gen_silver_refining";
/// Batches per import transaction.
const CHUNK: usize = 2000;

fn d(v: i64, scale: u32) -> Decimal {
    Decimal::new(v, scale)
}

fn step(id: &str, name: &str, kind: StepKind) -> Step {
    Step {
        step_id: id.into(),
        name: name.into(),
        kind,
    }
}

fn mc(expected_g: i64, tol: Tolerance) -> StepKind {
    StepKind::MassCheck {
        expected_mass: d(expected_g, 0),
        unit: MassUnit::G,
        tolerance: tol,
    }
}

fn rel(pct: Decimal) -> Tolerance {
    Tolerance::Relative { percent: pct }
}

/// A refining flow: lot of `lot_g` grams; `refining_tol` is the only difference between the
/// two gold versions.
fn flow_content(name: &str, pipeline: &str, lot_g: i64, refining_tol: Decimal) -> FlowContent {
    let refined = lot_g * 995 / 1000;
    let cast = lot_g * 990 / 1000;
    let station = |id: &str, nm: &str, steps: Vec<Step>| Station {
        station_id: id.into(),
        name: nm.into(),
        steps,
    };
    FlowContent {
        name: name.into(),
        pipeline: pipeline.into(),
        stations: vec![
            station(
                "receiving",
                "Receiving",
                vec![step(
                    "receiving-weigh",
                    "Weigh-in",
                    mc(
                        lot_g,
                        Tolerance::Absolute {
                            value: d(lot_g, 4) * d(5, 0),
                            unit: MassUnit::G,
                        },
                    ),
                )],
            ),
            station(
                "refining",
                "Refining",
                vec![
                    step(
                        "refining-safety",
                        "Safety checklist",
                        StepKind::Checklist {
                            items: vec!["Fume hood running".into(), "PPE worn".into()],
                        },
                    ),
                    step(
                        "refining-weigh",
                        "Weigh refined sponge",
                        mc(refined, rel(refining_tol)),
                    ),
                ],
            ),
            station(
                "assay",
                "Assay",
                vec![step(
                    "assay-verify",
                    "Verify assay",
                    StepKind::Signature {
                        meaning: "Assay verified by".into(),
                    },
                )],
            ),
            station(
                "casting",
                "Casting",
                vec![step(
                    "casting-weigh",
                    "Weigh cast bar",
                    mc(cast, rel(d(1, 0))),
                )],
            ),
            station(
                "qc",
                "Quality control",
                vec![
                    step("qc-weigh", "Re-weigh bar", mc(cast, rel(d(15, 1)))),
                    step(
                        "qc-release",
                        "Release",
                        StepKind::Signature {
                            meaning: "Released by".into(),
                        },
                    ),
                ],
            ),
        ],
    }
}

fn user(name: &str, role: Role, stations: Vec<String>, now: OffsetDateTime) -> User {
    User {
        id: format!("gen-{name}"),
        username: name.into(),
        display_name: format!("Generated {name}"),
        role,
        stations,
        active: true,
        // Not a PHC string: verifies as false, so generated people cannot log in.
        password_hash: "!generated".into(),
        created_at: now,
        updated_at: now,
    }
}

/// Generates and stores the history; `progress` is called with the batches done so far.
pub async fn generate(
    store: Arc<dyn Store>,
    opts: &Options,
    progress: impl Fn(u64),
) -> Result<Summary> {
    if !store.flow_versions(GOLD).await?.is_empty() {
        bail!("this data folder already has generated history ({GOLD} exists); generate into a fresh one");
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let now = opts.now;
    let start = now - Duration::days(opts.days.max(1) as i64);
    let middle = start + Duration::days((opts.days.max(1) / 2) as i64);

    // People.
    let mut operators = Vec::new();
    for (i, s) in STATIONS.iter().enumerate() {
        for k in 1..=2 {
            operators.push(user(
                &format!("op-{s}-{k}"),
                Role::Operator,
                vec![s.to_string()],
                start,
            ));
        }
        let next = STATIONS[(i + 1) % STATIONS.len()];
        operators.push(user(
            &format!("op-float-{}", i + 1),
            Role::Operator,
            vec![s.to_string(), next.to_string()],
            start,
        ));
    }
    let all: Vec<String> = STATIONS.iter().map(|s| s.to_string()).collect();
    let supervisors: Vec<User> = (1..=3)
        .map(|k| user(&format!("sup-{k}"), Role::Supervisor, all.clone(), start))
        .collect();
    let admin = user("gen-admin", Role::Admin, vec![], start);
    for u in operators
        .iter()
        .chain(&supervisors)
        .chain(std::iter::once(&admin))
    {
        if store.user_by_username(&u.username).await?.is_none() {
            store.create_user(u, &[]).await?;
        }
    }
    let people = People {
        operators: operators.iter().map(User::actor).collect(),
        supervisors: supervisors.iter().map(User::actor).collect(),
        admin: admin.actor(),
    };

    // Flows: gold v1 then v2 (tighter refining tolerance) from the middle on; silver v1.
    let audit = |action: &str, target: String, at| NewAudit {
        at,
        actor: "system".into(),
        action: action.into(),
        target,
        details: serde_json::json!({ "via": "generate" }),
        ip: None,
    };
    let publish = |id: &str, v: u32, content: FlowContent, from: OffsetDateTime| {
        let mut f = Flow::new_draft(id.into(), v, content, "gen-admin".into(), from);
        f.publish(None, Some(from), from).map(|_| f)
    };
    let gold1 = publish(
        GOLD,
        1,
        flow_content("Gold refining (generated)", "gold", 1000, d(1, 0)),
        start,
    )?;
    let gold2 = publish(
        GOLD,
        2,
        flow_content("Gold refining (generated)", "gold", 1000, d(8, 1)),
        middle,
    )?;
    let silver = publish(
        SILVER,
        1,
        flow_content("Silver refining (generated)", "silver", 5000, d(1, 0)),
        start,
    )?;
    for f in [&gold1, &silver] {
        let mut draft = f.clone();
        draft.status = metcon_shared::flow::FlowStatus::Draft;
        store
            .insert_flow(
                &draft,
                &[audit(
                    "flow_created",
                    format!("flow:{}@{}", f.flow_id, f.version),
                    start,
                )],
            )
            .await?;
        store
            .publish_flow(
                f,
                None,
                &[audit(
                    "flow_published",
                    format!("flow:{}@{}", f.flow_id, f.version),
                    start,
                )],
            )
            .await?;
    }
    let mut g2_draft = gold2.clone();
    g2_draft.status = metcon_shared::flow::FlowStatus::Draft;
    let mut g1_archived = gold1.clone();
    g1_archived.status = metcon_shared::flow::FlowStatus::Archived;
    store
        .insert_flow(
            &g2_draft,
            &[audit("flow_created", format!("flow:{GOLD}@2"), middle)],
        )
        .await?;
    store
        .publish_flow(
            &gold2,
            Some(&g1_archived),
            &[audit("flow_published", format!("flow:{GOLD}@2"), middle)],
        )
        .await?;

    // Creation times, in order.
    let span_ms = (now - start).whole_milliseconds() as i64;
    let mut created: Vec<OffsetDateTime> = (0..opts.batches)
        .map(|_| start + Duration::milliseconds(rng.gen_range(0..span_ms.max(1))))
        .collect();
    created.sort();

    let mut numbers: std::collections::HashMap<(String, i32), u32> = Default::default();
    let mut summary = Summary::default();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<ImportedBatch>>(2);
    let writer_store = store.clone();
    let writer = tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            writer_store.import_batches(chunk).await?;
        }
        Ok::<(), crate::store::StoreError>(())
    });
    let mut chunk = Vec::with_capacity(CHUNK);
    for (i, at) in created.into_iter().enumerate() {
        let flow = if rng.gen_bool(0.3) {
            &silver
        } else if at >= middle {
            &gold2
        } else {
            &gold1
        };
        let key = (flow.content.pipeline.clone(), at.year());
        let seq = match numbers.get(&key) {
            Some(n) => n + 1,
            None => store.next_batch_seq(&key.0, key.1).await?,
        };
        numbers.insert(key, seq);
        let batch = simulate(
            &mut rng,
            &people,
            flow,
            BatchNumber::new(at.year(), seq).to_string(),
            at,
            now,
            &mut summary,
        )?;
        chunk.push(batch);
        if chunk.len() == CHUNK {
            tx.send(std::mem::take(&mut chunk))
                .await
                .context("the writer stopped")?;
            progress(i as u64 + 1);
        }
    }
    if !chunk.is_empty() {
        tx.send(chunk).await.context("the writer stopped")?;
    }
    drop(tx);
    writer.await.context("the writer panicked")??;
    progress(opts.batches);
    summary.batches = opts.batches;
    store
        .append_audit(&audit("history_generated", "batches".into(), now))
        .await?;
    Ok(summary)
}
