//! One generated batch: a lot followed through the stations by commands to the real
//! domain (`decide` → `apply`), with weighings drawn around the lot's true mass, flags and
//! their decisions, and the odd block or override. See the parent module for the numbers.

use anyhow::{Context, Result};
use metcon_shared::batch::{
    BatchCommand, BatchState, BatchStatus, EventActor, MassSource, Priority, RecordedEvent,
    StepPayload,
};
use metcon_shared::flow::{Flow, Step, StepKind};
use metcon_shared::mass::{Mass, MassUnit};
use metcon_shared::role::Actor;
use rand::rngs::StdRng;
use rand::Rng;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use time::{Duration, OffsetDateTime};

use super::{Summary, STATIONS};
use crate::store::{BatchRecord, ImportedBatch};

/// Normal variate (Box–Muller); simulation only, never used for a decision.
fn normal(rng: &mut StdRng, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Minutes, log-normally spread around `median`.
fn minutes(rng: &mut StdRng, median: f64) -> Duration {
    let m = (median.ln() + normal(rng, 0.0, 0.5)).exp();
    Duration::milliseconds((m * 60_000.0) as i64)
}

/// A scale reading with 0.01 g resolution.
fn grams(g: f64) -> Mass {
    let v = Decimal::from_f64(g.max(0.0))
        .unwrap_or_default()
        .round_dp(2);
    Mass::new(v, MassUnit::G)
        .unwrap_or_else(|_| Mass::new(Decimal::ZERO, MassUnit::G).expect("zero is a mass"))
}

pub(super) struct People {
    pub(super) operators: Vec<Actor>,
    pub(super) supervisors: Vec<Actor>,
    pub(super) admin: Actor,
}

impl People {
    fn operator_at(&self, rng: &mut StdRng, station: &str) -> &Actor {
        let at: Vec<&Actor> = self
            .operators
            .iter()
            .filter(|a| a.stations.iter().any(|s| s == station))
            .collect();
        at[rng.gen_range(0..at.len())]
    }
    fn supervisor(&self, rng: &mut StdRng) -> &Actor {
        &self.supervisors[rng.gen_range(0..self.supervisors.len())]
    }
}

/// One batch being simulated.
struct Sim<'a> {
    flow: &'a Flow,
    state: BatchState,
    events: Vec<RecordedEvent>,
    stations_after: Vec<Option<String>>,
    rng: &'a mut StdRng,
    clock: OffsetDateTime,
    now: OffsetDateTime,
}

impl Sim<'_> {
    /// Runs a command at the current clock; false once the clock passed the present.
    fn run(&mut self, actor: &Actor, cmd: BatchCommand) -> Result<bool> {
        if self.clock > self.now {
            return Ok(false);
        }
        let events = self
            .state
            .decide(&self.flow.content, actor, &cmd)
            .with_context(|| format!("generator command {cmd:?} refused"))?;
        for event in events {
            let rec = RecordedEvent {
                event_id: uuid::Builder::from_random_bytes(self.rng.gen()).into_uuid(),
                seq: self.state.version + 1,
                at: self.clock,
                actor: EventActor::from(actor),
                event,
            };
            self.state
                .apply(&rec)
                .context("generator event does not fold")?;
            let station = match self.state.status {
                BatchStatus::Created | BatchStatus::Completed => None,
                _ => self
                    .flow
                    .content
                    .step_at(self.state.cursor)
                    .map(|(s, _)| s.station_id.clone()),
            };
            self.events.push(rec);
            self.stations_after.push(station);
        }
        Ok(true)
    }

    fn wait(&mut self, median_minutes: f64) {
        let gap = minutes(self.rng, median_minutes);
        self.clock += gap;
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn simulate(
    rng: &mut StdRng,
    people: &People,
    flow: &Flow,
    number: String,
    created: OffsetDateTime,
    now: OffsetDateTime,
    summary: &mut Summary,
) -> Result<ImportedBatch> {
    let receiver = people.operator_at(rng, "receiving").clone();
    let priority = if rng.gen_bool(0.1) {
        Priority::High
    } else {
        Priority::Normal
    };
    let id = uuid::Builder::from_random_bytes(rng.gen()).into_uuid();
    let event = BatchState::create(id, number, flow, priority, &receiver, created)?;
    let first = RecordedEvent {
        event_id: uuid::Builder::from_random_bytes(rng.gen()).into_uuid(),
        seq: 1,
        at: created,
        actor: EventActor::from(&receiver),
        event,
    };
    let state = BatchState::from_created(&first)?;
    let lot: f64 = match &flow.content.step_at(0) {
        Some((
            _,
            Step {
                kind: StepKind::MassCheck { expected_mass, .. },
                ..
            },
        )) => expected_mass.to_string().parse().unwrap_or(1000.0),
        _ => 1000.0,
    };
    let gold = flow.content.pipeline == "gold";
    let fineness = if gold {
        ["999.9", "999.5", "995.0"][rng.gen_range(0..3)]
    } else {
        ["999.0", "999.9"][rng.gen_range(0..2)]
    };
    let mut sim = Sim {
        flow,
        state,
        events: vec![first],
        stations_after: vec![None],
        rng,
        clock: created,
        now,
    };
    let medians = [30.0, 360.0, 180.0, 120.0, 45.0];
    let mut mass = 0.0_f64;
    sim.wait(10.0);
    let mut go = sim.run(&receiver, BatchCommand::Start)?;
    let mut overridden = false;
    let mut index = 0;
    while go && index < flow.content.step_count() {
        let Some((station, step)) = flow.content.step_at(index) else {
            break;
        };
        let st = STATIONS
            .iter()
            .position(|s| *s == station.station_id)
            .unwrap_or(0);
        sim.wait(medians[st] / 2.0);
        let op = people.operator_at(sim.rng, &station.station_id).clone();
        if sim.rng.gen_bool(0.002) {
            if !sim.run(
                &op,
                BatchCommand::RaiseFlag {
                    reason: "seal or label damaged".into(),
                },
            )? {
                break;
            }
            sim.wait(40.0);
            let sup = people.supervisor(sim.rng).clone();
            let flag_id = sim.state.version;
            if !sim.run(
                &sup,
                BatchCommand::ApproveFlag {
                    flag_id,
                    reason: "checked with the customer's delivery note".into(),
                },
            )? {
                break;
            }
        }
        if sim.rng.gen_bool(0.001) {
            let sup = people.supervisor(sim.rng).clone();
            if !sim.run(
                &sup,
                BatchCommand::Block {
                    reason: "waiting for a customs document".into(),
                },
            )? {
                break;
            }
            if sim.rng.gen_bool(0.7) {
                sim.wait(600.0);
                let admin = people.admin.clone();
                if !sim.run(
                    &admin,
                    BatchCommand::Unblock {
                        reason: "document received".into(),
                    },
                )? {
                    break;
                }
            } else {
                break;
            }
        }
        go = match &step.kind {
            StepKind::MassCheck { .. } => {
                mass = match (station.station_id.as_str(), mass) {
                    ("receiving", _) => lot * (1.0 + normal(sim.rng, 0.0, 0.0002)),
                    ("refining", m) => m * (1.0 - normal(sim.rng, 0.005, 0.0045)),
                    ("casting", m) => m * (1.0 - normal(sim.rng, 0.005, 0.001)),
                    (_, m) => m + normal(sim.rng, 0.0, 0.05),
                };
                weigh(
                    &mut sim,
                    people,
                    &op,
                    &step.step_id,
                    mass,
                    (station.station_id == "casting").then_some(fineness),
                    summary,
                )?
            }
            StepKind::Checklist { items } => sim.run(
                &op,
                BatchCommand::CompleteStep {
                    step_id: step.step_id.clone(),
                    payload: StepPayload::Checklist {
                        checked: items.clone(),
                    },
                },
            )?,
            StepKind::Signature { meaning } => sim.run(
                &op,
                BatchCommand::CompleteStep {
                    step_id: step.step_id.clone(),
                    payload: StepPayload::Signature {
                        meaning: meaning.clone(),
                    },
                },
            )?,
            StepKind::Instruction { .. } => sim.run(
                &op,
                BatchCommand::CompleteStep {
                    step_id: step.step_id.clone(),
                    payload: StepPayload::Instruction { acknowledged: true },
                },
            )?,
            StepKind::Photo { .. } => sim.run(
                &op,
                BatchCommand::CompleteStep {
                    step_id: step.step_id.clone(),
                    payload: StepPayload::Photo {
                        photo_sha256: "0".repeat(64),
                    },
                },
            )?,
        };
        index = sim.state.cursor;
        // Rarely, an admin sends a cast bar back to refining.
        if go
            && !overridden
            && station.station_id == "casting"
            && index > 0
            && sim.rng.gen_bool(0.002)
        {
            overridden = true;
            sim.wait(30.0);
            let admin = people.admin.clone();
            go = sim.run(
                &admin,
                BatchCommand::Override {
                    to_step_id: "refining-weigh".into(),
                    reason: "inclusions seen in the bar; re-refine".into(),
                },
            )?;
            mass /= 0.995;
            index = sim.state.cursor;
        }
    }
    if go && sim.state.cursor == flow.content.step_count() {
        sim.wait(5.0);
        let op = people.operator_at(sim.rng, "qc").clone();
        sim.run(&op, BatchCommand::Complete)?;
    }
    summary.events += sim.events.len() as u64;
    let record = BatchRecord::new(sim.state, &flow.content);
    Ok(ImportedBatch {
        record,
        events: sim.events,
        stations_after: sim.stations_after,
    })
}

/// A weighing, and when it is out of tolerance the supervisor's decision; a rejection means
/// a careful re-weigh.
fn weigh(
    sim: &mut Sim<'_>,
    people: &People,
    op: &Actor,
    step_id: &str,
    grams_: f64,
    fineness: Option<&str>,
    summary: &mut Summary,
) -> Result<bool> {
    let mut actual = grams_;
    loop {
        let roll: f64 = sim.rng.gen();
        let (source, mut note) = if roll < 0.02 {
            (
                MassSource::Manual,
                Some("display unreadable; entered by hand".to_string()),
            )
        } else if roll < 0.10 {
            let c = Decimal::new(sim.rng.gen_range(86..=99), 2);
            (
                MassSource::Ocr {
                    confidence: c,
                    photo_sha256: None,
                },
                None,
            )
        } else {
            let seq = sim.rng.gen_range(1..1_000_000_000u64);
            (
                MassSource::Device {
                    device_id: format!("scale-{}", &step_id[..step_id.find('-').unwrap_or(0)]),
                    sequence: seq,
                },
                None,
            )
        };
        if let Some(f) = fineness {
            note = Some(format!("fineness={f}"));
        }
        let from_device = matches!(source, MassSource::Device { .. });
        let before = sim.state.version;
        if !sim.run(
            op,
            BatchCommand::RecordMassCheck {
                step_id: step_id.into(),
                actual: grams(actual),
                source,
                note,
            },
        )? {
            return Ok(false);
        }
        summary.mass_checks += 1;
        if sim.state.status != BatchStatus::Flagged {
            // Now and then glare makes the camera's display read differ from the signed
            // serial value: an OCR-mismatch flag that a supervisor clears.
            if from_device && sim.rng.gen_bool(0.01) {
                sim.wait(1.0);
                let flags = sim.state.flags.len();
                if !sim.run(
                    op,
                    BatchCommand::CrossCheckDisplay {
                        step_id: step_id.into(),
                        serial: grams(actual),
                        display: grams(actual + 8.0),
                        resolution: Mass::new(Decimal::new(1, 2), MassUnit::G)
                            .expect("a positive mass"),
                    },
                )? {
                    return Ok(false);
                }
                if sim.state.flags.len() > flags {
                    summary.ocr_mismatches += 1;
                    let flag_id = sim.state.version;
                    sim.wait(60.0);
                    let sup = people.supervisor(sim.rng).clone();
                    return sim.run(
                        &sup,
                        BatchCommand::ApproveFlag {
                            flag_id,
                            reason: "glare on the display; the serial reading is right".into(),
                        },
                    );
                }
            }
            return Ok(true);
        }
        summary.out_of_tolerance += 1;
        let flag_id = before + 2;
        sim.wait(90.0);
        let sup = people.supervisor(sim.rng).clone();
        if sim.rng.gen_bool(0.85) {
            let reason = [
                "crucible residue accounted for",
                "moisture in the sponge, verified",
                "scale re-checked with a reference weight",
                "within the refinery's process loss",
            ][sim.rng.gen_range(0..4)];
            return sim.run(
                &sup,
                BatchCommand::ApproveFlag {
                    flag_id,
                    reason: reason.into(),
                },
            );
        }
        if !sim.run(
            &sup,
            BatchCommand::RejectFlag {
                flag_id,
                reason: "re-weigh after cleaning the pan".into(),
            },
        )? {
            return Ok(false);
        }
        sim.wait(15.0);
        // The re-weigh lands near the expected mass.
        if let Some((
            _,
            Step {
                kind: StepKind::MassCheck { expected_mass, .. },
                ..
            },
        )) = sim.flow.content.step_at(sim.state.cursor)
        {
            let e: f64 = expected_mass.to_string().parse().unwrap_or(actual);
            actual = e * (1.0 + normal(sim.rng, 0.0, 0.0005));
        }
    }
}
