//! Tests of the batch aggregate, and the harness they share.
//!
//! The harness ([`Run`]) drives commands through `decide`, records the accepted events the way
//! the store does (seq = version + 1, with a fixed clock) and folds them in with `apply`,
//! checking after every append that replaying the whole stream gives the same state and that a
//! refused command changed nothing. The submodules hold one test per rule ([`steps`],
//! [`flags`], [`lifecycle`]) and the property tests ([`properties`]).

use rust_decimal::Decimal;
use time::macros::datetime;

use super::*;
use crate::flow::{FlowStatus, Station, Step};
use crate::mass::MassUnit;

mod flags;
mod lifecycle;
mod properties;
mod steps;

const T0: OffsetDateTime = datetime!(2026-03-01 09:00 UTC);
/// SHA-256 of the empty string.
const HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn actor(user_id: &str, role: Role, stations: &[&str]) -> Actor {
    Actor {
        user_id: user_id.into(),
        username: format!("{user_id}-name"),
        role,
        stations: stations.iter().map(|s| s.to_string()).collect(),
    }
}

fn op_recv() -> Actor {
    actor("op-recv", Role::Operator, &["receiving"])
}
fn op_assay() -> Actor {
    actor("op-assay", Role::Operator, &["assay"])
}
fn sup1() -> Actor {
    actor("sup-1", Role::Supervisor, &["receiving", "assay"])
}
fn sup2() -> Actor {
    actor("sup-2", Role::Supervisor, &["receiving", "assay"])
}
fn admin() -> Actor {
    actor("admin", Role::Admin, &[])
}
fn analyst() -> Actor {
    actor("analyst", Role::Analyst, &["receiving", "assay"])
}

fn g(v: &str) -> Mass {
    Mass::parse(v, "g").expect("test literal")
}

fn step(step_id: &str, name: &str, kind: StepKind) -> Step {
    Step {
        step_id: step_id.into(),
        name: name.into(),
        kind,
    }
}

/// receiving: instruction, checklist, mass check (150 g ± 0.5 g); assay: signature, photo.
fn gold_flow() -> FlowContent {
    FlowContent {
        name: "Gold Refining".into(),
        pipeline: "gold".into(),
        stations: vec![
            Station {
                station_id: "receiving".into(),
                name: "Receiving".into(),
                steps: vec![
                    step(
                        "recv-read",
                        "Read",
                        StepKind::Instruction {
                            text: "Open the sealed bag.".into(),
                        },
                    ),
                    step(
                        "recv-check",
                        "Check",
                        StepKind::Checklist {
                            items: vec!["Seal intact".into(), "Label matches".into()],
                        },
                    ),
                    step(
                        "recv-weigh",
                        "Weigh",
                        StepKind::MassCheck {
                            expected_mass: Decimal::from(150),
                            unit: MassUnit::G,
                            tolerance: Tolerance::Absolute {
                                value: Decimal::new(5, 1),
                                unit: MassUnit::G,
                            },
                        },
                    ),
                ],
            },
            Station {
                station_id: "assay".into(),
                name: "Assay".into(),
                steps: vec![
                    step(
                        "assay-sign",
                        "Sign",
                        StepKind::Signature {
                            meaning: "Verified by".into(),
                        },
                    ),
                    step(
                        "assay-photo",
                        "Photo",
                        StepKind::Photo {
                            prompt: "Photograph the bar".into(),
                        },
                    ),
                ],
            },
        ],
    }
}

fn complete(step_id: &str, payload: StepPayload) -> BatchCommand {
    BatchCommand::CompleteStep {
        step_id: step_id.into(),
        payload,
    }
}
fn ack() -> StepPayload {
    StepPayload::Instruction { acknowledged: true }
}
fn checked(items: &[&str]) -> StepPayload {
    StepPayload::Checklist {
        checked: items.iter().map(|s| s.to_string()).collect(),
    }
}
fn sign(meaning: &str) -> StepPayload {
    StepPayload::Signature {
        meaning: meaning.into(),
    }
}
fn photo(hash: &str) -> StepPayload {
    StepPayload::Photo {
        photo_sha256: hash.into(),
    }
}
fn weigh(step_id: &str, actual: Mass, note: Option<&str>) -> BatchCommand {
    BatchCommand::RecordMassCheck {
        step_id: step_id.into(),
        actual,
        source: MassSource::Manual,
        note: note.map(str::to_string),
    }
}
fn reason(r: &str) -> String {
    r.to_string()
}
fn approve(flag_id: u64) -> BatchCommand {
    BatchCommand::ApproveFlag {
        flag_id,
        reason: reason("re-weighed by hand, accepted"),
    }
}
fn reject(flag_id: u64) -> BatchCommand {
    BatchCommand::RejectFlag {
        flag_id,
        reason: reason("weigh again"),
    }
}
fn raise(r: &str) -> BatchCommand {
    BatchCommand::RaiseFlag { reason: reason(r) }
}
fn cross_check(step_id: &str, serial: &str, display: &str) -> BatchCommand {
    BatchCommand::CrossCheckDisplay {
        step_id: step_id.into(),
        serial: g(serial),
        display: g(display),
        resolution: g("0.1"),
    }
}
fn block() -> BatchCommand {
    BatchCommand::Block {
        reason: reason("scale under maintenance"),
    }
}
fn unblock() -> BatchCommand {
    BatchCommand::Unblock {
        reason: reason("scale back"),
    }
}
fn override_to(step_id: &str) -> BatchCommand {
    BatchCommand::Override {
        to_step_id: step_id.into(),
        reason: reason("redo it"),
    }
}

/// Wraps decided events the way the store records them and folds them in.
fn record(
    state: &mut BatchState,
    log: &mut Vec<RecordedEvent>,
    actor: &Actor,
    events: Vec<BatchEvent>,
) -> Result<(), ReplayError> {
    for event in events {
        let seq = state.version + 1;
        let rec = RecordedEvent {
            event_id: Uuid::from_u128(u128::from(seq)),
            seq,
            at: T0 + time::Duration::minutes(seq as i64),
            actor: actor.into(),
            event,
        };
        state.apply(&rec)?;
        log.push(rec);
    }
    Ok(())
}

/// One batch on one flow, with its stream.
struct Run {
    flow: Flow,
    state: BatchState,
    log: Vec<RecordedEvent>,
}

impl Run {
    fn new(content: FlowContent) -> Run {
        let mut flow = Flow::new_draft("gold-refining".into(), 1, content, "admin".into(), T0);
        flow.publish(None, None, T0)
            .expect("the test flow is valid");
        let created = BatchState::create(
            Uuid::from_u128(7),
            "B-2026-0001".into(),
            &flow,
            Priority::High,
            &op_recv(),
            T0,
        )
        .expect("an operator creates a batch on an active flow");
        let rec = RecordedEvent {
            event_id: Uuid::from_u128(1),
            seq: 1,
            at: T0,
            actor: (&op_recv()).into(),
            event: created,
        };
        let state = BatchState::from_created(&rec).expect("created event");
        Run {
            flow,
            state,
            log: vec![rec],
        }
    }

    fn gold() -> Run {
        Run::new(gold_flow())
    }

    fn exec(&mut self, actor: &Actor, cmd: BatchCommand) -> Result<Vec<BatchEvent>, BatchError> {
        let before = self.state.clone();
        match self.state.decide(&self.flow.content, actor, &cmd) {
            Ok(events) => {
                record(&mut self.state, &mut self.log, actor, events.clone())
                    .expect("decided events apply");
                assert_eq!(
                    BatchState::replay(&self.log).expect("replay"),
                    self.state,
                    "replay equals the incremental state"
                );
                Ok(events)
            }
            Err(e) => {
                assert_eq!(self.state, before);
                Err(e)
            }
        }
    }

    fn ok(&mut self, actor: &Actor, cmd: BatchCommand) -> Vec<BatchEvent> {
        let what = format!("{cmd:?} by {}", actor.user_id);
        self.exec(actor, cmd)
            .unwrap_or_else(|e| panic!("{what} refused: {e}"))
    }

    fn err(&mut self, actor: &Actor, cmd: BatchCommand) -> BatchError {
        let what = format!("{cmd:?} by {}", actor.user_id);
        match self.exec(actor, cmd) {
            Ok(events) => panic!("{what} accepted: {events:?}"),
            Err(e) => e,
        }
    }

    fn last_seq(&self) -> u64 {
        self.log.last().map_or(0, |r| r.seq)
    }

    /// Started, instruction and checklist done: the mass check is current.
    fn at_weigh() -> Run {
        let mut run = Run::gold();
        run.ok(&op_recv(), BatchCommand::Start);
        run.ok(&op_recv(), complete("recv-read", ack()));
        run.ok(
            &op_recv(),
            complete("recv-check", checked(&["Seal intact", "Label matches"])),
        );
        assert_eq!(run.state.cursor, 2);
        run
    }

    /// The mass check is out of tolerance; returns the flag id.
    fn flagged() -> (Run, u64) {
        let mut run = Run::at_weigh();
        run.ok(
            &op_recv(),
            weigh("recv-weigh", g("148.3"), Some("bag was wet")),
        );
        let id = run.last_seq();
        (run, id)
    }

    /// All receiving steps done: the signature is current.
    fn at_assay() -> Run {
        let mut run = Run::at_weigh();
        run.ok(&op_recv(), weigh("recv-weigh", g("150.2"), None));
        assert_eq!(run.state.cursor, 3);
        run
    }

    fn done() -> Run {
        let mut run = Run::at_assay();
        run.ok(&op_assay(), complete("assay-sign", sign("Verified by")));
        run.ok(&op_assay(), complete("assay-photo", photo(HASH)));
        run
    }
}

/// One of every command, aimed at every step and every flag of `state`.
fn every_command(flow: &FlowContent, state: &BatchState) -> Vec<BatchCommand> {
    let mut out = vec![
        BatchCommand::Start,
        raise("look at this"),
        block(),
        unblock(),
        BatchCommand::Complete,
    ];
    for (_, s) in flow.steps() {
        out.push(override_to(&s.step_id));
        out.push(weigh(&s.step_id, g("150"), None));
        for payload in [ack(), sign("Verified by"), photo(HASH)] {
            out.push(complete(&s.step_id, payload));
        }
        if let StepKind::Checklist { items } = &s.kind {
            out.push(complete(
                &s.step_id,
                StepPayload::Checklist {
                    checked: items.clone(),
                },
            ));
        }
    }
    for (_, s) in flow.steps() {
        for display in ["150", "151.3"] {
            out.push(cross_check(&s.step_id, "150", display));
        }
    }
    for f in &state.flags {
        out.push(approve(f.flag_id));
        out.push(reject(f.flag_id));
    }
    out.push(approve(999));
    out
}

#[test]
fn an_ocr_mismatch_beyond_the_resolution_flags_and_the_serial_value_stands() {
    let mut run = Run::at_assay();
    // Within the display's last digit: nothing happens.
    assert_eq!(
        run.ok(&op_recv(), cross_check("recv-weigh", "150.2", "150.3")),
        vec![]
    );
    // Units are converted exactly before comparing.
    let in_kg = BatchCommand::CrossCheckDisplay {
        step_id: "recv-weigh".into(),
        serial: g("150.2"),
        display: Mass::parse("0.1503", "kg").expect("test literal"),
        resolution: g("0.1"),
    };
    assert_eq!(run.ok(&op_recv(), in_kg), vec![]);
    assert_eq!(run.state.status, BatchStatus::InProgress);
    // Beyond it: an OCR-mismatch flag on the weighing, and the batch waits.
    let events = run.ok(&op_recv(), cross_check("recv-weigh", "150.2", "158.2"));
    let [BatchEvent::FlagRaised {
        kind,
        step_id,
        step_index,
        reason,
        ..
    }] = events.as_slice()
    else {
        panic!("one flag: {events:?}");
    };
    assert_eq!(*kind, FlagKind::OcrMismatch);
    assert_eq!((step_id.as_str(), *step_index), ("recv-weigh", 2));
    assert!(
        reason.contains("158.2 g") && reason.contains("150.2 g"),
        "{reason}"
    );
    assert_eq!(run.state.status, BatchStatus::Flagged);
    // Approving clears it; the step stays done with the signed value, nothing is redone.
    let flag_id = run.last_seq();
    run.ok(&sup1(), approve(flag_id));
    assert_eq!(run.state.status, BatchStatus::InProgress);
    assert_eq!(run.state.cursor, 3);
}

#[test]
fn an_ocr_cross_check_needs_a_reached_mass_check_step_and_the_right_role() {
    let mut run = Run::at_weigh();
    assert!(matches!(
        run.err(&op_recv(), cross_check("assay-sign", "150", "160")),
        BatchError::NotCurrentStep { .. }
    ));
    assert!(matches!(
        run.err(&op_recv(), cross_check("recv-check", "150", "160")),
        BatchError::WrongStepType { .. }
    ));
    assert!(matches!(
        run.err(&op_recv(), cross_check("no-such-step", "150", "160")),
        BatchError::UnknownStep { .. }
    ));
    assert!(matches!(
        run.err(&analyst(), cross_check("recv-weigh", "150", "160")),
        BatchError::Forbidden { .. }
    ));
}
