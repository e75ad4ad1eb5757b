//! Property tests: random valid flows (1–3 stations of 1–3 steps of random types) and random
//! command sequences (up to 40) from random actors with right and wrong payloads. Every
//! accepted command's events must apply; after every event the state's invariants hold;
//! replaying the stream gives the incrementally built state; a refused command changes
//! nothing; a completed batch refuses everything.

use proptest::prelude::*;

use super::*;

/// The step types of a generated flow.
#[derive(Debug, Clone)]
enum KindSpec {
    Instruction,
    Checklist(usize),
    MassCheck { relative: bool },
    Signature,
    Photo,
}

fn kind_spec() -> impl Strategy<Value = KindSpec> {
    prop_oneof![
        Just(KindSpec::Instruction),
        (1usize..=3).prop_map(KindSpec::Checklist),
        any::<bool>().prop_map(|relative| KindSpec::MassCheck { relative }),
        Just(KindSpec::Signature),
        Just(KindSpec::Photo),
    ]
}

/// A valid flow: 1–3 stations of 1–3 steps; mass checks expect 100 g ± 1 g (or ± 1 %).
fn build_flow(spec: &[Vec<KindSpec>]) -> FlowContent {
    let stations = spec
        .iter()
        .enumerate()
        .map(|(si, steps)| Station {
            station_id: format!("s{si}"),
            name: format!("Station {si}"),
            steps: steps
                .iter()
                .enumerate()
                .map(|(ti, k)| Step {
                    step_id: format!("s{si}-t{ti}"),
                    name: format!("Step {ti}"),
                    kind: match k {
                        KindSpec::Instruction => StepKind::Instruction {
                            text: "Do it".into(),
                        },
                        KindSpec::Checklist(n) => StepKind::Checklist {
                            items: (0..*n).map(|i| format!("item {i}")).collect(),
                        },
                        KindSpec::MassCheck { relative } => StepKind::MassCheck {
                            expected_mass: Decimal::from(100),
                            unit: MassUnit::G,
                            tolerance: if *relative {
                                Tolerance::Relative {
                                    percent: Decimal::ONE,
                                }
                            } else {
                                Tolerance::Absolute {
                                    value: Decimal::ONE,
                                    unit: MassUnit::G,
                                }
                            },
                        },
                        KindSpec::Signature => StepKind::Signature {
                            meaning: "Released by".into(),
                        },
                        KindSpec::Photo => StepKind::Photo {
                            prompt: "Photograph it".into(),
                        },
                    },
                })
                .collect(),
        })
        .collect();
    FlowContent {
        name: "Generated".into(),
        pipeline: "gold".into(),
        stations,
    }
}

/// The people in the property tests: indexes into [`prop_actors`].
fn prop_actors() -> [Actor; 6] {
    [
        actor("op-all", Role::Operator, &["s0", "s1", "s2"]),
        actor("op-s0", Role::Operator, &["s0"]),
        actor("sup-a", Role::Supervisor, &["s0", "s1", "s2"]),
        actor("sup-b", Role::Supervisor, &["s1"]),
        actor("admin", Role::Admin, &[]),
        actor("analyst", Role::Analyst, &["s0", "s1", "s2"]),
    ]
}

/// Which step a command aims at, relative to the current one.
#[derive(Debug, Clone, Copy)]
enum Target {
    Current,
    Offset(i8),
    Unknown,
}

/// Whether a step command carries what the step needs.
#[derive(Debug, Clone, Copy)]
enum Quality {
    Good(u8),
    Bad(u8),
    WrongType(u8),
}

/// A command in the abstract; [`concretize`] aims it at the state it meets.
#[derive(Debug, Clone)]
enum Op {
    Start,
    Execute {
        target: Target,
        quality: Quality,
    },
    RaiseFlag {
        blank: bool,
    },
    Decide {
        approve: bool,
        pick: u8,
        blank: bool,
    },
    Block {
        blank: bool,
    },
    Unblock {
        blank: bool,
    },
    Override {
        back: u8,
        blank: bool,
    },
    Complete,
}

fn op() -> impl Strategy<Value = Op> {
    let blank = || prop::bool::weighted(0.1);
    let target = prop_oneof![
        8 => Just(Target::Current),
        1 => (-2i8..=2).prop_map(Target::Offset),
        1 => Just(Target::Unknown),
    ];
    let quality = prop_oneof![
        7 => any::<u8>().prop_map(Quality::Good),
        2 => any::<u8>().prop_map(Quality::Bad),
        1 => any::<u8>().prop_map(Quality::WrongType),
    ];
    prop_oneof![
        2 => Just(Op::Start),
        20 => (target, quality).prop_map(|(target, quality)| Op::Execute { target, quality }),
        1 => blank().prop_map(|blank| Op::RaiseFlag { blank }),
        4 => (any::<bool>(), any::<u8>(), blank())
            .prop_map(|(approve, pick, blank)| Op::Decide { approve, pick, blank }),
        1 => blank().prop_map(|blank| Op::Block { blank }),
        3 => blank().prop_map(|blank| Op::Unblock { blank }),
        1 => (0u8..4, blank()).prop_map(|(back, blank)| Op::Override { back, blank }),
        3 => Just(Op::Complete),
    ]
}

fn actor_index() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![0usize, 0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 5])
}

/// A flow and up to 40 commands; most scenarios begin by starting the batch, so that the
/// commands meet a running batch rather than a created one.
fn scenario() -> impl Strategy<Value = (Vec<Vec<KindSpec>>, Vec<(usize, Op)>)> {
    (
        prop::collection::vec(prop::collection::vec(kind_spec(), 1..=3), 1..=3),
        prop::bool::weighted(0.9),
        prop::collection::vec((actor_index(), op()), 0..=39),
    )
        .prop_map(|(spec, start, mut ops)| {
            if start {
                ops.insert(0, (0, Op::Start));
            }
            (spec, ops)
        })
}

fn reason_or_blank(blank: bool, text: &str) -> String {
    if blank {
        " ".into()
    } else {
        text.into()
    }
}

/// A payload for `kind`: the right one (`good`) or one that is wrong in the `v`-th way.
fn payload(kind: &StepKind, good: bool, v: u8) -> StepPayload {
    match kind {
        StepKind::Instruction { .. } => StepPayload::Instruction { acknowledged: good },
        StepKind::Checklist { items } => {
            let mut checked = items.clone();
            if good {
                checked.reverse();
            } else if v % 2 == 0 {
                checked.pop();
            } else {
                checked.push("not on the list".into());
            }
            StepPayload::Checklist { checked }
        }
        StepKind::Signature { meaning } => StepPayload::Signature {
            meaning: if good {
                format!(" {meaning} ")
            } else {
                "Approved by".into()
            },
        },
        StepKind::Photo { .. } => StepPayload::Photo {
            photo_sha256: match (good, v % 2) {
                (true, _) => HASH.into(),
                (false, 0) => HASH.to_uppercase(),
                (false, _) => HASH[1..].into(),
            },
        },
        // A mass check takes no payload: any is of the wrong type.
        StepKind::MassCheck { .. } => wrong_type_payload(kind, v),
    }
}

/// A payload of another type than `kind`.
fn wrong_type_payload(kind: &StepKind, v: u8) -> StepPayload {
    let all = [
        ack(),
        checked(&["item 0"]),
        sign("Released by"),
        photo(HASH),
    ];
    let others: Vec<StepPayload> = all
        .into_iter()
        .filter(|p| p.type_name() != kind.type_name())
        .collect();
    others[usize::from(v) % others.len()].clone()
}

/// Masses against 100 g ± 1 g: within (boundaries included) or out of tolerance.
fn mass(within: bool, v: u8) -> Mass {
    let (value, unit) = if within {
        [
            ("100", "g"),
            ("101", "g"),
            ("99", "g"),
            ("0.1005", "kg"),
            ("99000", "mg"),
        ][usize::from(v) % 5]
    } else {
        [
            ("101.001", "g"),
            ("98.9", "g"),
            ("0", "g"),
            ("3.5", "ozt"),
            ("1", "kg"),
        ][usize::from(v) % 5]
    };
    Mass::parse(value, unit).expect("test literal")
}

/// Aims an abstract command at the current state.
fn concretize(flow: &FlowContent, state: &BatchState, op: &Op) -> BatchCommand {
    let count = flow.step_count();
    let last = count - 1;
    match *op {
        Op::Start => BatchCommand::Start,
        Op::Execute { target, quality } => {
            let index = match target {
                Target::Current => state.cursor.min(last),
                Target::Offset(o) => {
                    (state.cursor as i64 + i64::from(o)).clamp(0, last as i64) as usize
                }
                Target::Unknown => {
                    return complete("no-such-step", ack());
                }
            };
            let (_, step) = flow.step_at(index).expect("index within the flow");
            let id = step.step_id.clone();
            match (&step.kind, quality) {
                // Now and then typed in for a photo OCR could not read (always flagged).
                (StepKind::MassCheck { .. }, Quality::Good(v) | Quality::Bad(v)) if v % 7 == 3 => {
                    BatchCommand::RecordMassCheck {
                        step_id: id,
                        actual: mass(matches!(quality, Quality::Good(_)), v),
                        source: MassSource::ManualUnreadablePhoto {
                            photo_sha256: HASH.into(),
                        },
                        note: None,
                    }
                }
                (StepKind::MassCheck { .. }, Quality::Good(v)) => weigh(&id, mass(true, v), None),
                (StepKind::MassCheck { .. }, Quality::Bad(v)) => {
                    weigh(&id, mass(false, v), (v % 3 == 0).then_some("looks wet"))
                }
                (kind, Quality::WrongType(v))
                    if v % 3 == 0 && !matches!(kind, StepKind::MassCheck { .. }) =>
                {
                    weigh(&id, mass(true, v), None)
                }
                (kind, Quality::WrongType(v)) => complete(&id, wrong_type_payload(kind, v)),
                (kind, Quality::Good(v)) => complete(&id, payload(kind, true, v)),
                (kind, Quality::Bad(v)) => complete(&id, payload(kind, false, v)),
            }
        }
        Op::RaiseFlag { blank } => BatchCommand::RaiseFlag {
            reason: reason_or_blank(blank, "looks odd"),
        },
        Op::Decide {
            approve,
            pick,
            blank,
        } => {
            let open: Vec<u64> = state.open_flags().map(|f| f.flag_id).collect();
            let pick = usize::from(pick) % (open.len() + 1);
            // One choice past the open flags aims at a flag that is not open.
            let flag_id = open.get(pick).copied().unwrap_or(state.version + 100);
            let reason = reason_or_blank(blank, "decided");
            if approve {
                BatchCommand::ApproveFlag { flag_id, reason }
            } else {
                BatchCommand::RejectFlag { flag_id, reason }
            }
        }
        Op::Block { blank } => BatchCommand::Block {
            reason: reason_or_blank(blank, "hold"),
        },
        Op::Unblock { blank } => BatchCommand::Unblock {
            reason: reason_or_blank(blank, "go"),
        },
        Op::Override { back, blank } => {
            let to = state.cursor.saturating_sub(usize::from(back)).min(last);
            BatchCommand::Override {
                to_step_id: flow
                    .step_at(to)
                    .expect("index within the flow")
                    .1
                    .step_id
                    .clone(),
                reason: reason_or_blank(blank, "redo"),
            }
        }
        Op::Complete => BatchCommand::Complete,
    }
}

/// What must hold of every state the aggregate reaches.
fn check_invariants(s: &BatchState, events: usize) -> Result<(), TestCaseError> {
    let open = s.open_flags().count();
    prop_assert!(
        s.cursor <= s.step_count,
        "cursor {} > {}",
        s.cursor,
        s.step_count
    );
    prop_assert_eq!(s.version, events as u64);
    match s.status {
        BatchStatus::Created => {
            prop_assert_eq!(s.cursor, 0);
            prop_assert!(s.flags.is_empty());
            prop_assert!(s.started_at.is_none());
        }
        BatchStatus::InProgress => prop_assert_eq!(open, 0, "in progress with open flags"),
        BatchStatus::Flagged => prop_assert!(open > 0, "flagged without an open flag"),
        BatchStatus::Blocked => prop_assert!(
            matches!(
                s.blocked_from,
                Some(BatchStatus::Created | BatchStatus::InProgress | BatchStatus::Flagged)
            ),
            "blocked from {:?}",
            s.blocked_from
        ),
        BatchStatus::Completed => {
            prop_assert_eq!(s.cursor, s.step_count);
            prop_assert_eq!(open, 0);
            prop_assert!(s.completed_at.is_some());
        }
    }
    if s.status != BatchStatus::Blocked {
        prop_assert_eq!(s.blocked_from, None);
    }
    let mut ids: Vec<u64> = s.flags.iter().map(|f| f.flag_id).collect();
    ids.dedup();
    prop_assert_eq!(
        ids.len(),
        s.flags.len(),
        "flag ids are unique and increasing"
    );
    Ok(())
}

/// What an accepted command must have produced, beyond the invariants of the state.
fn check_outcome(
    before: &BatchState,
    actor: &Actor,
    command: &BatchCommand,
    events: &[BatchEvent],
) -> Result<(), TestCaseError> {
    // People execute steps only where they may operate.
    if matches!(
        command,
        BatchCommand::CompleteStep { .. } | BatchCommand::RecordMassCheck { .. }
    ) {
        for e in events {
            if let BatchEvent::StepCompleted { station_id, .. }
            | BatchEvent::MassChecked { station_id, .. } = e
            {
                prop_assert!(
                    actor.may_operate_at(station_id),
                    "{} at {}",
                    actor.user_id,
                    station_id
                );
            }
        }
    }
    // A recorded mass completes its step exactly when it is within tolerance and not typed
    // in for an unreadable photo; otherwise it raises an out-of-tolerance flag, or a
    // manual-entry flag for an unreadable photo's value within tolerance.
    if let [BatchEvent::MassChecked {
        expected,
        tolerance,
        actual,
        check,
        source,
        ..
    }, next] = events
    {
        prop_assert_eq!(check, &tolerance.check(expected, actual));
        let unreadable = matches!(source, MassSource::ManualUnreadablePhoto { .. });
        match next {
            BatchEvent::StepCompleted { .. } => prop_assert!(check.within && !unreadable),
            BatchEvent::FlagRaised {
                kind: FlagKind::OutOfTolerance,
                ..
            } => prop_assert!(!check.within),
            BatchEvent::FlagRaised {
                kind: FlagKind::ManualEntry,
                ..
            } => prop_assert!(check.within && unreadable),
            other => prop_assert!(false, "a mass check followed by {:?}", other),
        }
    }
    // While a flag is open, a step completes only by approving an out-of-tolerance or
    // manual-entry flag.
    if before.status == BatchStatus::Flagged
        && events
            .iter()
            .any(|e| matches!(e, BatchEvent::StepCompleted { .. }))
    {
        let BatchCommand::ApproveFlag { flag_id, .. } = command else {
            return Err(TestCaseError::fail(format!(
                "{command:?} completed a step of a flagged batch"
            )));
        };
        let flag = before.flags.iter().find(|f| f.flag_id == *flag_id);
        prop_assert!(
            flag.is_some_and(|f| f.kind.approval_completes_step()),
            "{:?}",
            flag
        );
    }
    Ok(())
}

/// What a run reached, for the generator's own check.
#[derive(Debug, Default)]
struct Seen {
    statuses: std::collections::BTreeSet<&'static str>,
    events: std::collections::BTreeSet<&'static str>,
}

/// Drives `ops` through decide/apply and checks the properties after every event.
fn drive(
    spec: &[Vec<KindSpec>],
    ops: &[(usize, Op)],
    seen: &mut Seen,
) -> Result<(), TestCaseError> {
    let flow = build_flow(spec);
    prop_assert_eq!(flow.problems(), vec![], "the generated flow is valid");
    let actors = prop_actors();
    let mut run = Run::new(flow.clone());
    check_invariants(&run.state, run.log.len())?;
    for (who, op) in ops {
        let actor = &actors[*who];
        let command = concretize(&flow, &run.state, op);
        let before = run.state.clone();
        let decided = before.decide(&flow, actor, &command);
        let Ok(events) = decided else {
            // (d) a refused command changes nothing
            prop_assert_eq!(&run.state, &before);
            continue;
        };
        prop_assert!(
            before.status != BatchStatus::Completed,
            "completed is terminal, yet {:?} by {} gave {:?}",
            command,
            actor.user_id,
            events
        );
        prop_assert!(
            actor.role != Role::Analyst,
            "an analyst executed {:?}",
            command
        );
        prop_assert!(!events.is_empty());
        check_outcome(&before, actor, &command, &events)?;
        for event in events {
            let seq = run.state.version + 1;
            if let BatchEvent::FlagRaised { flag_id, .. } = &event {
                prop_assert_eq!(*flag_id, seq, "a flag id is its event's seq");
            }
            let overridden = matches!(event, BatchEvent::Overridden { .. });
            let cursor = run.state.cursor;
            seen.events.insert(event.type_name());
            // (a) decided events always apply
            let applied = record(&mut run.state, &mut run.log, actor, vec![event.clone()]);
            prop_assert!(applied.is_ok(), "{:?} did not apply: {:?}", event, applied);
            // (b) invariants
            check_invariants(&run.state, run.log.len())?;
            prop_assert!(
                run.state.cursor >= cursor || overridden,
                "the cursor moved back without an override"
            );
            seen.statuses.insert(run.state.status.as_str());
        }
        // (c) replay equals the incremental state
        let replayed = BatchState::replay(&run.log);
        prop_assert_eq!(replayed.as_ref(), Ok(&run.state));
    }
    if run.state.status == BatchStatus::Completed {
        for actor in &actors {
            for command in every_command(&flow, &run.state) {
                prop_assert!(run.state.decide(&flow, actor, &command).is_err());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_command_sequences_keep_the_invariants((spec, ops) in scenario()) {
        drive(&spec, &ops, &mut Seen::default())?;
    }
}

/// The generator is not vacuous: over a fixed sample of scenarios, every event type and every
/// status happens.
#[test]
fn the_generated_scenarios_reach_every_event_and_status() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = Seen::default();
    let strategy = scenario();
    for _ in 0..256 {
        let (spec, ops) = strategy
            .new_tree(&mut runner)
            .expect("a scenario")
            .current();
        drive(&spec, &ops, &mut seen).expect("the properties hold");
    }
    let all_events = [
        "started",
        "step_completed",
        "mass_checked",
        "flag_raised",
        "flag_approved",
        "flag_rejected",
        "blocked",
        "unblocked",
        "overridden",
        "completed",
    ];
    for e in all_events {
        assert!(seen.events.contains(e), "no {e} in {:?}", seen.events);
    }
    for s in ["in_progress", "flagged", "blocked", "completed"] {
        assert!(seen.statuses.contains(s), "no {s} in {:?}", seen.statuses);
    }
}
