//! Mass checks and flags: the tolerance decision, out-of-tolerance and manual flags, and who
//! may decide them.

use super::*;

#[test]
fn the_tolerance_boundary_is_inclusive() {
    for actual in ["150.5", "149.5"] {
        let mut run = Run::at_weigh();
        run.ok(&op_recv(), weigh("recv-weigh", g(actual), None));
        assert_eq!(run.state.cursor, 3, "{actual}");
    }
    let mut run = Run::at_weigh();
    run.ok(&op_recv(), weigh("recv-weigh", g("150.5001"), None));
    assert_eq!(run.state.status, BatchStatus::Flagged);
}

#[test]
fn out_of_tolerance_flags_the_batch_with_the_flag_id_as_its_seq() {
    let mut run = Run::at_weigh();
    let events = run.ok(
        &op_recv(),
        weigh("recv-weigh", g("148.3"), Some(" bag was wet ")),
    );
    let [BatchEvent::MassChecked { check, note, .. }, BatchEvent::FlagRaised {
        flag_id,
        kind: FlagKind::OutOfTolerance,
        step_id,
        step_index: 2,
        reason,
        ..
    }] = events.as_slice()
    else {
        panic!("mass checked and flag raised: {events:?}")
    };
    assert!(!check.within);
    assert_eq!(check.variance, Decimal::new(-17, 1));
    assert_eq!(note.as_deref(), Some("bag was wet"));
    assert_eq!(reason, "bag was wet");
    assert_eq!(step_id, "recv-weigh");
    assert_eq!(*flag_id, run.last_seq());
    let s = &run.state;
    assert_eq!(s.status, BatchStatus::Flagged);
    assert_eq!(s.cursor, 2, "the step is not done");
    assert_eq!(s.open_flags().count(), 1);
    assert_eq!(s.flags[0].raised_by, (&op_recv()).into());
    // Without a note the reason says what happened.
    let mut run = Run::at_weigh();
    run.ok(&op_recv(), weigh("recv-weigh", g("160"), None));
    assert_eq!(run.state.flags[0].reason, "mass out of tolerance");
}

#[test]
fn nothing_is_executed_while_flagged() {
    let (mut run, _) = Run::flagged();
    assert!(matches!(
        run.err(&op_recv(), weigh("recv-weigh", g("150"), None)),
        BatchError::WrongStatus {
            status: "flagged",
            ..
        }
    ));
    assert!(matches!(
        run.err(&admin(), BatchCommand::Complete),
        BatchError::WrongStatus { .. }
    ));
    // A manual flag stops the batch just the same.
    let mut run = Run::gold();
    run.ok(&op_recv(), BatchCommand::Start);
    run.ok(&op_recv(), raise("the seal is broken"));
    assert!(matches!(
        run.err(&admin(), complete("recv-read", ack())),
        BatchError::WrongStatus {
            status: "flagged",
            ..
        }
    ));
}

#[test]
fn a_supervisor_approving_the_flag_completes_the_mass_check() {
    let (mut run, id) = Run::flagged();
    let events = run.ok(&sup1(), approve(id));
    assert!(matches!(
        events.as_slice(),
        [BatchEvent::FlagApproved { flag_id, .. }, BatchEvent::StepCompleted { step_index: 2, payload: None, .. }]
            if *flag_id == id
    ));
    let s = &run.state;
    assert_eq!(s.status, BatchStatus::InProgress);
    assert_eq!(s.cursor, 3);
    let resolution = s.flags[0].resolution.as_ref().expect("decided");
    assert!(resolution.approved);
    assert_eq!(resolution.by.user_id, "sup-1");
    assert_eq!(resolution.reason, "re-weighed by hand, accepted");
    // Decided flags cannot be decided again.
    run.ok(&sup1(), raise("second look"));
    assert_eq!(
        run.err(&sup2(), reject(id)),
        BatchError::NoSuchOpenFlag { flag_id: id }
    );
}

#[test]
fn rejecting_the_flag_keeps_the_mass_check_current() {
    let (mut run, id) = Run::flagged();
    assert_eq!(
        run.ok(&admin(), reject(id)),
        vec![BatchEvent::FlagRejected {
            flag_id: id,
            reason: "weigh again".into()
        }]
    );
    assert_eq!(run.state.status, BatchStatus::InProgress);
    assert_eq!(run.state.cursor, 2);
    assert_eq!(
        run.state.flags[0].resolution.as_ref().map(|r| r.approved),
        Some(false)
    );
    // The next step is refused until the mass is re-weighed.
    assert!(matches!(
        run.err(&op_assay(), complete("assay-sign", sign("Verified by"))),
        BatchError::NotCurrentStep { .. }
    ));
    run.ok(&op_recv(), weigh("recv-weigh", g("150.1"), None));
    assert_eq!(run.state.cursor, 3);
}

#[test]
fn the_raiser_cannot_decide_their_own_flag() {
    let mut run = Run::at_weigh();
    run.ok(&sup1(), raise("seal looks tampered"));
    let id = run.last_seq();
    assert_eq!(run.state.flags[0].kind, FlagKind::Manual);
    assert_eq!(run.err(&sup1(), approve(id)), BatchError::OwnFlag);
    assert_eq!(run.err(&sup1(), reject(id)), BatchError::OwnFlag);
    // Approving a manual flag clears it; the step still has to be done.
    assert_eq!(run.ok(&sup2(), approve(id)).len(), 1);
    assert_eq!(run.state.status, BatchStatus::InProgress);
    assert_eq!(run.state.cursor, 2);
    // The same holds for an admin who weighed out of tolerance.
    run.ok(&admin(), weigh("recv-weigh", g("140"), None));
    assert_eq!(
        run.err(&admin(), approve(run.last_seq())),
        BatchError::OwnFlag
    );
}

#[test]
fn operators_and_analysts_cannot_decide_flags() {
    let (mut run, id) = Run::flagged();
    assert_eq!(
        run.err(&op_assay(), approve(id)),
        BatchError::Forbidden {
            role: Role::Operator,
            action: "decide flags"
        }
    );
    assert!(matches!(
        run.err(&analyst(), reject(id)),
        BatchError::Forbidden { .. }
    ));
}

#[test]
fn deciding_a_flag_needs_a_reason_and_an_open_flag() {
    let (mut run, id) = Run::flagged();
    let blank = BatchCommand::ApproveFlag {
        flag_id: id,
        reason: "  ".into(),
    };
    assert_eq!(run.err(&sup1(), blank), BatchError::ReasonRequired);
    assert_eq!(
        run.err(&sup1(), approve(id + 1)),
        BatchError::NoSuchOpenFlag { flag_id: id + 1 }
    );
    // With two open flags, deciding one keeps the batch flagged.
    run.ok(&op_recv(), raise("smell of acid"));
    let manual = run.last_seq();
    run.ok(&sup1(), reject(id));
    assert_eq!(run.state.status, BatchStatus::Flagged);
    run.ok(&sup1(), approve(manual));
    assert_eq!(run.state.status, BatchStatus::InProgress);
    assert_eq!(run.state.cursor, 2);
    assert!(matches!(
        run.err(&sup1(), approve(manual)),
        BatchError::WrongStatus { .. }
    ));
}

#[test]
fn raising_a_flag_needs_a_reason_and_a_running_batch() {
    let mut run = Run::gold();
    assert!(matches!(
        run.err(&op_recv(), raise("x")),
        BatchError::WrongStatus { .. }
    ));
    run.ok(&op_recv(), BatchCommand::Start);
    assert_eq!(run.err(&op_recv(), raise(" ")), BatchError::ReasonRequired);
    let events = run.ok(&op_recv(), raise("  odd colour "));
    assert!(matches!(
        events.as_slice(),
        [BatchEvent::FlagRaised { flag_id, kind: FlagKind::Manual, step_id, reason, .. }]
            if *flag_id == run.last_seq() && step_id == "recv-read" && reason == "odd colour"
    ));
    // Once every step is done, a flag points at the last step.
    let mut run = Run::done();
    run.ok(&op_assay(), raise("bar looks porous"));
    assert_eq!(run.state.flags[0].step_id, "assay-photo");
    assert!(matches!(
        run.err(&op_assay(), BatchCommand::Complete),
        BatchError::WrongStatus { .. }
    ));
}

fn weigh_unreadable(actual: &str, photo: &str) -> BatchCommand {
    BatchCommand::RecordMassCheck {
        step_id: "recv-weigh".into(),
        actual: g(actual),
        source: MassSource::ManualUnreadablePhoto {
            photo_sha256: photo.into(),
        },
        note: Some("display fogged".into()),
    }
}

#[test]
fn a_manual_entry_for_an_unreadable_photo_is_flagged_even_within_tolerance() {
    let mut run = Run::at_weigh();
    let events = run.ok(&op_recv(), weigh_unreadable("150.1", HASH));
    let [BatchEvent::MassChecked { check, source, .. }, BatchEvent::FlagRaised { kind, reason, .. }] =
        events.as_slice()
    else {
        panic!("mass checked and flag raised: {events:?}")
    };
    assert!(check.within);
    assert_eq!(source.photo_sha256(), Some(HASH));
    assert_eq!(*kind, FlagKind::ManualEntry);
    assert!(reason.contains("display fogged"), "{reason}");
    assert_eq!(run.state.status, BatchStatus::Flagged);
    assert_eq!(run.state.cursor, 2, "the step waits for the approval");
    // The operator cannot approve their own entry; a supervisor's approval completes the step.
    let flag_id = run.last_seq();
    assert!(matches!(
        run.err(&op_recv(), approve(flag_id)),
        BatchError::Forbidden { .. }
    ));
    run.ok(&sup1(), approve(flag_id));
    assert_eq!(run.state.status, BatchStatus::InProgress);
    assert_eq!(run.state.cursor, 3);
}

#[test]
fn an_unreadable_photo_entry_out_of_tolerance_raises_one_out_of_tolerance_flag() {
    let mut run = Run::at_weigh();
    let events = run.ok(&op_recv(), weigh_unreadable("140", HASH));
    let kinds: Vec<FlagKind> = events
        .iter()
        .filter_map(|e| match e {
            BatchEvent::FlagRaised { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec![FlagKind::OutOfTolerance]);
    // Rejecting keeps the step current for a re-take.
    let flag_id = run.last_seq();
    run.ok(&sup1(), reject(flag_id));
    assert_eq!(run.state.cursor, 2);
}

#[test]
fn photo_references_of_mass_checks_must_be_sha256() {
    let mut run = Run::at_weigh();
    assert!(matches!(
        run.err(&op_recv(), weigh_unreadable("150", "../../etc/passwd")),
        BatchError::BadPhotoReference
    ));
    let ocr = BatchCommand::RecordMassCheck {
        step_id: "recv-weigh".into(),
        actual: g("150"),
        source: MassSource::Ocr {
            confidence: Decimal::new(97, 2),
            photo_sha256: Some(HASH.to_uppercase()),
        },
        note: None,
    };
    assert!(matches!(
        run.err(&op_recv(), ocr),
        BatchError::BadPhotoReference
    ));
}

#[test]
fn older_ocr_sources_without_a_photo_still_deserialize() {
    let s: MassSource =
        serde_json::from_str(r#"{"kind":"ocr","confidence":"0.93"}"#).expect("old event");
    assert_eq!(
        s,
        MassSource::Ocr {
            confidence: Decimal::new(93, 2),
            photo_sha256: None
        }
    );
    assert_eq!(
        serde_json::to_string(&s).expect("json"),
        r#"{"kind":"ocr","confidence":"0.93"}"#
    );
}
