//! The demo data set: a gold refining flow that uses all five step types and one user per
//! role, so the README's first command gives a system to click through at once.
//!
//! Demo passwords are random per data folder, kept in `demo-credentials.txt` (mode 0600)
//! beside the database and printed at every demo start; nothing is hard-coded.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use metcon_shared::flow::{Flow, FlowContent, Station, Step, StepKind};
use metcon_shared::mass::MassUnit;
use metcon_shared::role::Role;
use metcon_shared::tolerance::Tolerance;
use rust_decimal::Decimal;
use serde_json::json;
use time::OffsetDateTime;

use crate::auth::{password, token::random_token};
use crate::store::{NewAudit, Store, User};

pub const FLOW_ID: &str = "gold_refining";

fn step(id: &str, name: &str, kind: StepKind) -> Step {
    Step {
        step_id: id.into(),
        name: name.into(),
        kind,
    }
}

fn station(id: &str, name: &str, steps: Vec<Step>) -> Station {
    Station {
        station_id: id.into(),
        name: name.into(),
        steps,
    }
}

fn grams(v: i64, scale: u32) -> Decimal {
    Decimal::new(v, scale)
}

/// Gold refining: Receiving, Refining, Assay, Casting, QC.
pub fn gold_flow() -> FlowContent {
    FlowContent {
        name: "Gold Refining".into(),
        pipeline: "gold".into(),
        stations: vec![
            station("receiving", "Receiving", vec![
                step("receiving-inspect", "Inspect seals", StepKind::Instruction { text: "Check that the seals of the incoming lot are intact and that the lot number matches the delivery note.".into() }),
                step("receiving-weigh", "Initial weigh-in", StepKind::MassCheck { expected_mass: grams(1000, 0), unit: MassUnit::G, tolerance: Tolerance::Absolute { value: grams(5, 1), unit: MassUnit::G } }),
                step("receiving-photo", "Photograph the lot", StepKind::Photo { prompt: "Photograph the lot on the scale with its label visible.".into() }),
            ]),
            station("refining", "Refining", vec![
                step("refining-safety", "Safety checklist", StepKind::Checklist { items: vec!["Fume hood running".into(), "Acid-resistant PPE worn".into(), "Spill kit at hand".into()] }),
                step("refining-weigh", "Weigh refined sponge", StepKind::MassCheck { expected_mass: grams(995, 0), unit: MassUnit::G, tolerance: Tolerance::Relative { percent: grams(1, 0) } }),
            ]),
            station("assay", "Assay", vec![
                step("assay-sample", "Take assay sample", StepKind::Instruction { text: "Take two drill samples from opposite corners and seal them in labelled bags.".into() }),
                step("assay-verify", "Verify assay", StepKind::Signature { meaning: "Assay verified by".into() }),
            ]),
            station("casting", "Casting", vec![
                step("casting-weigh", "Weigh cast bar", StepKind::MassCheck { expected_mass: grams(990, 0), unit: MassUnit::G, tolerance: Tolerance::Absolute { value: grams(1, 0), unit: MassUnit::G } }),
                step("casting-photo", "Photograph the bar", StepKind::Photo { prompt: "Photograph the cast bar with its serial number readable.".into() }),
            ]),
            station("qc", "Quality control", vec![
                step("qc-inspect", "Final inspection", StepKind::Checklist { items: vec!["Serial number stamped".into(), "Fineness stamped".into(), "Surface free of defects".into()] }),
                step("qc-release", "Release", StepKind::Signature { meaning: "Released by".into() }),
            ]),
        ],
    }
}

const STATIONS: [&str; 5] = ["receiving", "refining", "assay", "casting", "qc"];

/// Seeds users and the published gold flow unless they exist; returns `(username, password)`
/// pairs to print.
pub async fn seed(store: &dyn Store, data_dir: &Path) -> Result<Vec<(String, String, Role)>> {
    let creds_path = data_dir.join("demo-credentials.txt");
    let now = OffsetDateTime::now_utc();
    if store.count_users().await? == 0 {
        let mut lines = String::new();
        for (name, role) in [
            ("admin", Role::Admin),
            ("supervisor", Role::Supervisor),
            ("operator", Role::Operator),
            ("analyst", Role::Analyst),
        ] {
            let pw = random_token()[..16].to_string();
            let hash = {
                let pw = pw.clone();
                tokio::task::spawn_blocking(move || password::hash(&pw)).await??
            };
            let stations = if matches!(role, Role::Operator | Role::Supervisor) {
                STATIONS.iter().map(|s| s.to_string()).collect()
            } else {
                vec![]
            };
            let user = User {
                id: uuid::Uuid::new_v4().to_string(),
                username: name.into(),
                display_name: format!("Demo {name}"),
                role,
                stations,
                active: true,
                password_hash: hash,
                created_at: now,
                updated_at: now,
            };
            let a = NewAudit {
                at: now,
                actor: "system".into(),
                action: "user_created".into(),
                target: format!("user:{name}"),
                details: json!({ "role": role, "via": "demo seed" }),
                ip: None,
            };
            store
                .create_user(&user, &[a])
                .await
                .context("while creating demo users")?;
            lines.push_str(&format!("{name} {pw} {role}\n"));
        }
        write_private(&creds_path, &lines)?;
    }
    if store.flow_versions(FLOW_ID).await?.is_empty() {
        let mut flow = Flow::new_draft(FLOW_ID.into(), 1, gold_flow(), "system".into(), now);
        let audit = |action: &str| NewAudit {
            at: now,
            actor: "system".into(),
            action: action.into(),
            target: format!("flow:{FLOW_ID}@1"),
            details: json!({ "via": "demo seed" }),
            ip: None,
        };
        store.insert_flow(&flow, &[audit("flow_created")]).await?;
        flow.publish(None, None, now)
            .map_err(|e| anyhow::anyhow!("demo flow: {e}"))?;
        store
            .publish_flow(&flow, None, &[audit("flow_published")])
            .await?;
    }
    let text = std::fs::read_to_string(&creds_path).with_context(|| {
        format!(
            "while reading {} (delete the data folder to reseed the demo)",
            creds_path.display()
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((
                p.next()?.to_string(),
                p.next()?.to_string(),
                p.next()?.parse().ok()?,
            ))
        })
        .collect())
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("while writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}
