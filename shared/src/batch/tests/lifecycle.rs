//! Blocking, unblocking, overriding, completing, and replaying a stream.

use super::*;

#[test]
fn a_blocked_batch_waits_for_an_admin() {
    let mut run = Run::at_weigh();
    assert_eq!(
        run.err(&op_recv(), block()),
        BatchError::Forbidden {
            role: Role::Operator,
            action: "block batches"
        }
    );
    assert_eq!(
        run.err(&sup1(), BatchCommand::Block { reason: "".into() }),
        BatchError::ReasonRequired
    );
    run.ok(&sup1(), block());
    assert_eq!(run.state.status, BatchStatus::Blocked);
    assert_eq!(run.state.blocked_from, Some(BatchStatus::InProgress));
    assert!(matches!(
        run.err(&op_recv(), weigh("recv-weigh", g("150"), None)),
        BatchError::WrongStatus {
            status: "blocked",
            ..
        }
    ));
    assert!(matches!(
        run.err(&sup1(), raise("x")),
        BatchError::WrongStatus { .. }
    ));
    assert!(matches!(
        run.err(&admin(), block()),
        BatchError::WrongStatus { .. }
    ));
    assert_eq!(
        run.err(&sup1(), unblock()),
        BatchError::Forbidden {
            role: Role::Supervisor,
            action: "unblock batches"
        }
    );
    run.ok(&admin(), unblock());
    assert_eq!(run.state.status, BatchStatus::InProgress);
    assert_eq!(run.state.blocked_from, None);
    assert!(matches!(
        run.err(&admin(), unblock()),
        BatchError::WrongStatus { .. }
    ));
    run.ok(&op_recv(), weigh("recv-weigh", g("150"), None));
}

#[test]
fn unblocking_returns_to_flagged_with_the_flag_still_open() {
    let (mut run, id) = Run::flagged();
    run.ok(&sup2(), block());
    assert_eq!(run.state.blocked_from, Some(BatchStatus::Flagged));
    assert!(matches!(
        run.err(&sup1(), approve(id)),
        BatchError::WrongStatus { .. }
    ));
    run.ok(&admin(), unblock());
    assert_eq!(run.state.status, BatchStatus::Flagged);
    assert_eq!(run.state.open_flags().count(), 1);
    run.ok(&sup1(), approve(id));
    assert_eq!(run.state.cursor, 3);
}

#[test]
fn a_created_batch_can_be_blocked_and_returns_to_created() {
    let mut run = Run::gold();
    run.ok(&admin(), block());
    run.ok(&admin(), unblock());
    assert_eq!(run.state.status, BatchStatus::Created);
}

#[test]
fn overriding_moves_back_only_and_only_for_admins() {
    let mut run = Run::at_assay();
    assert_eq!(
        run.err(&sup1(), override_to("recv-read")),
        BatchError::Forbidden {
            role: Role::Supervisor,
            action: "override steps"
        }
    );
    assert_eq!(
        run.err(&admin(), override_to("assay-sign")),
        BatchError::OverrideNotBackward
    );
    assert_eq!(
        run.err(&admin(), override_to("assay-photo")),
        BatchError::OverrideNotBackward
    );
    assert!(matches!(
        run.err(&admin(), override_to("nope")),
        BatchError::UnknownStep { .. }
    ));
    assert_eq!(
        run.err(
            &admin(),
            BatchCommand::Override {
                to_step_id: "recv-check".into(),
                reason: " ".into()
            }
        ),
        BatchError::ReasonRequired
    );
    assert_eq!(
        run.ok(&admin(), override_to("recv-check")),
        vec![BatchEvent::Overridden {
            from_index: 3,
            to_index: 1,
            to_step_id: "recv-check".into(),
            reason: "redo it".into()
        }]
    );
    assert_eq!(run.state.cursor, 1);
    // The steps are done again, in order.
    assert!(matches!(
        run.err(&op_assay(), complete("assay-sign", sign("Verified by"))),
        BatchError::NotCurrentStep { .. }
    ));
    run.ok(
        &op_recv(),
        complete("recv-check", checked(&["Seal intact", "Label matches"])),
    );
    run.ok(&op_recv(), weigh("recv-weigh", g("150"), None));
    assert_eq!(run.state.cursor, 3);
}

#[test]
fn overriding_works_on_a_blocked_batch_but_not_a_flagged_one() {
    let (mut run, id) = Run::flagged();
    assert!(matches!(
        run.err(&admin(), override_to("recv-read")),
        BatchError::WrongStatus { .. }
    ));
    run.ok(&admin(), block());
    run.ok(&admin(), override_to("recv-read"));
    run.ok(&admin(), unblock());
    assert_eq!(run.state.status, BatchStatus::Flagged);
    // The out-of-tolerance flag no longer points at the current step: approving it clears it
    // without completing anything.
    assert_eq!(run.ok(&sup1(), approve(id)).len(), 1);
    assert_eq!(run.state.cursor, 0);
}

// --- completion ---------------------------------------------------------------------------------

#[test]
fn completing_needs_every_step_done() {
    let mut run = Run::gold();
    run.ok(&op_recv(), BatchCommand::Start);
    assert_eq!(
        run.err(&op_recv(), BatchCommand::Complete),
        BatchError::StepsRemaining { remaining: 5 }
    );
    let mut run = Run::at_assay();
    assert_eq!(
        run.err(&admin(), BatchCommand::Complete),
        BatchError::StepsRemaining { remaining: 2 }
    );
    assert!(matches!(
        run.err(&analyst(), BatchCommand::Complete),
        BatchError::Forbidden { .. }
    ));
}

#[test]
fn completing_needs_no_open_flags() {
    let mut run = Run::done();
    run.ok(&op_assay(), raise("check the paperwork"));
    let id = run.last_seq();
    // Refused as long as the flag is open (the batch is flagged).
    assert!(run.exec(&admin(), BatchCommand::Complete).is_err());
    run.ok(&sup1(), approve(id));
    run.ok(&admin(), BatchCommand::Complete);
    assert_eq!(run.state.status, BatchStatus::Completed);
}

#[test]
fn a_completed_batch_refuses_everything() {
    let mut run = Run::done();
    run.ok(&op_assay(), BatchCommand::Complete);
    let before = run.state.clone();
    for who in [op_recv(), op_assay(), sup1(), sup2(), admin(), analyst()] {
        for cmd in every_command(&run.flow.content, &run.state) {
            run.err(&who, cmd);
        }
    }
    assert_eq!(run.state, before);
}

#[test]
fn an_analyst_cannot_execute_anything() {
    let mut runs = vec![Run::gold(), Run::at_weigh(), Run::flagged().0, Run::done()];
    let mut blocked = Run::at_assay();
    blocked.ok(&admin(), block());
    runs.push(blocked);
    for mut run in runs {
        for cmd in every_command(&run.flow.content, &run.state) {
            let e = run.err(&analyst(), cmd);
            assert!(
                matches!(
                    e,
                    BatchError::Forbidden {
                        role: Role::Analyst,
                        ..
                    }
                ),
                "{e:?}"
            );
        }
    }
}

// --- replay -------------------------------------------------------------------------------------

#[test]
fn the_stream_round_trips_through_json_and_replays() {
    let (mut run, id) = Run::flagged();
    run.ok(&sup1(), approve(id));
    run.ok(&sup1(), block());
    run.ok(&admin(), override_to("recv-read"));
    run.ok(&admin(), unblock());
    let json = serde_json::to_string(&run.log).expect("serialize");
    let back: Vec<RecordedEvent> = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, run.log);
    assert_eq!(BatchState::replay(&back), Ok(run.state.clone()));
    let state_json = serde_json::to_string(&run.state).expect("serialize");
    let state_back: BatchState = serde_json::from_str(&state_json).expect("deserialize");
    assert_eq!(state_back, run.state);
}

#[test]
fn replay_refuses_streams_decide_could_not_have_produced() {
    assert_eq!(BatchState::replay(&[]), Err(ReplayError::Empty));
    let run = Run::at_weigh();
    assert_eq!(
        BatchState::replay(&run.log[1..]),
        Err(ReplayError::NotStartedWithCreated)
    );
    // A gap in the sequence.
    let mut gap = run.log.clone();
    gap.remove(2);
    assert!(matches!(
        BatchState::replay(&gap),
        Err(ReplayError::OutOfOrder {
            seq: 4,
            expected: 3
        })
    ));
    // A skipped step.
    let mut skipped = run.log.clone();
    if let BatchEvent::StepCompleted { step_index, .. } = &mut skipped[3].event {
        *step_index = 2;
    }
    assert!(matches!(
        BatchState::replay(&skipped),
        Err(ReplayError::Inconsistent { seq: 4, .. })
    ));
    // A flag whose id is not its sequence number.
    let (flagged, _) = Run::flagged();
    let mut wrong_id = flagged.log.clone();
    if let Some(BatchEvent::FlagRaised { flag_id, .. }) = wrong_id.last_mut().map(|r| &mut r.event)
    {
        *flag_id += 1;
    }
    assert!(matches!(
        BatchState::replay(&wrong_id),
        Err(ReplayError::Inconsistent { .. })
    ));
    // A second `created`.
    let mut twice = run.log.clone();
    let mut again = run.log[0].clone();
    again.seq = 5;
    twice.push(again);
    assert!(matches!(
        BatchState::replay(&twice),
        Err(ReplayError::Inconsistent { seq: 5, .. })
    ));
}
