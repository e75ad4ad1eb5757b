//! Creating and starting a batch, step order, station scope and the five step types with
//! the payload each needs.

use super::*;

#[test]
fn a_batch_pins_its_flow_version() {
    let run = Run::gold();
    let s = &run.state;
    assert_eq!(s.status, BatchStatus::Created);
    assert_eq!((s.flow_id.as_str(), s.flow_version), ("gold-refining", 1));
    assert_eq!((s.step_count, s.cursor, s.version), (5, 0, 1));
    assert_eq!(s.pipeline, "gold");
    assert_eq!(s.priority, Priority::High);
    assert_eq!(s.batch_number, "B-2026-0001");
}

#[test]
fn batches_start_only_on_an_active_effective_flow_with_steps() {
    let draft = Flow::new_draft("f".into(), 1, gold_flow(), "admin".into(), T0);
    let create = |flow: &Flow, who: &Actor| {
        BatchState::create(
            Uuid::nil(),
            "B-2026-0002".into(),
            flow,
            Priority::Normal,
            who,
            T0,
        )
    };
    assert!(matches!(
        create(&draft, &admin()),
        Err(BatchError::Flow(FlowError::NotActive { .. }))
    ));
    let mut later = draft.clone();
    later
        .publish(None, Some(T0 + time::Duration::hours(1)), T0)
        .expect("valid");
    assert!(matches!(
        create(&later, &admin()),
        Err(BatchError::Flow(FlowError::NotYetEffective { .. }))
    ));
    let mut empty = Flow::new_draft(
        "f".into(),
        1,
        FlowContent {
            stations: vec![],
            ..gold_flow()
        },
        "admin".into(),
        T0,
    );
    empty.status = FlowStatus::Active;
    assert_eq!(create(&empty, &admin()), Err(BatchError::EmptyFlow));
    assert_eq!(
        create(&Run::gold().flow, &analyst()),
        Err(BatchError::Forbidden {
            role: Role::Analyst,
            action: "create batches"
        })
    );
}

#[test]
fn nothing_runs_before_start_and_start_happens_once() {
    let mut run = Run::gold();
    assert_eq!(
        run.err(&op_recv(), complete("recv-read", ack())),
        BatchError::WrongStatus {
            status: "created",
            action: "complete a step"
        }
    );
    assert_eq!(
        run.ok(&op_recv(), BatchCommand::Start),
        vec![BatchEvent::Started]
    );
    assert_eq!(run.state.status, BatchStatus::InProgress);
    assert_eq!(run.state.started_at, Some(run.log[1].at));
    assert!(matches!(
        run.err(&op_recv(), BatchCommand::Start),
        BatchError::WrongStatus { .. }
    ));
}

#[test]
fn a_command_against_another_flow_is_refused() {
    let run = Run::at_weigh();
    let mut other = gold_flow();
    other.stations.pop();
    assert!(matches!(
        run.state
            .decide(&other, &op_recv(), &complete("recv-weigh", ack())),
        Err(BatchError::FlowMismatch { .. })
    ));
}

// --- the five step types ----------------------------------------------------------------------

#[test]
fn happy_path_through_all_five_step_types() {
    let mut run = Run::gold();
    run.ok(&op_recv(), BatchCommand::Start);
    assert_eq!(
        run.ok(&op_recv(), complete("recv-read", ack())),
        vec![BatchEvent::StepCompleted {
            station_id: "receiving".into(),
            step_id: "recv-read".into(),
            step_index: 0,
            payload: Some(ack()),
        }]
    );
    // Checklist items may be ticked in any order.
    run.ok(
        &op_recv(),
        complete("recv-check", checked(&["Label matches", "Seal intact"])),
    );
    // Within tolerance, in another unit: 150.3 g = 0.1503 kg.
    let kg = Mass::parse("0.1503", "kg").expect("valid");
    let events = run.ok(&op_recv(), weigh("recv-weigh", kg, Some("  ")));
    let [BatchEvent::MassChecked {
        step_index: 2,
        check,
        note: None,
        ..
    }, BatchEvent::StepCompleted {
        step_index: 2,
        payload: None,
        ..
    }] = events.as_slice()
    else {
        panic!("mass checked and step completed: {events:?}")
    };
    assert!(check.within);
    // The signature meaning is compared and stored trimmed.
    let events = run.ok(&sup1(), complete("assay-sign", sign("  Verified by ")));
    assert!(matches!(
        &events[..],
        [BatchEvent::StepCompleted { payload: Some(StepPayload::Signature { meaning }), .. }]
            if meaning == "Verified by"
    ));
    run.ok(&op_assay(), complete("assay-photo", photo(HASH)));
    assert_eq!(run.state.cursor, 5);
    assert_eq!(run.state.status, BatchStatus::InProgress);
    assert_eq!(
        run.ok(&op_assay(), BatchCommand::Complete),
        vec![BatchEvent::Completed]
    );
    let s = &run.state;
    assert_eq!(s.status, BatchStatus::Completed);
    assert_eq!(s.version, run.log.len() as u64);
    assert_eq!(s.completed_at, Some(run.log.last().expect("events").at));
    assert_eq!(s.updated_at, run.log.last().expect("events").at);
    assert!(s.flags.is_empty());
}

#[test]
fn steps_cannot_be_skipped_or_repeated() {
    let mut run = Run::gold();
    run.ok(&op_recv(), BatchCommand::Start);
    assert_eq!(
        run.err(
            &op_recv(),
            complete("recv-check", checked(&["Seal intact"]))
        ),
        BatchError::NotCurrentStep {
            step_id: "recv-check".into(),
            current: "recv-read".into()
        }
    );
    assert!(matches!(
        run.err(&op_recv(), weigh("recv-weigh", g("150"), None)),
        BatchError::NotCurrentStep { .. }
    ));
    assert!(matches!(
        run.err(&admin(), complete("assay-photo", photo(HASH))),
        BatchError::NotCurrentStep { .. }
    ));
    run.ok(&op_recv(), complete("recv-read", ack()));
    assert_eq!(
        run.err(&op_recv(), complete("recv-read", ack())),
        BatchError::NotCurrentStep {
            step_id: "recv-read".into(),
            current: "recv-check".into()
        }
    );
    assert_eq!(
        run.err(&op_recv(), complete("no-such-step", ack())),
        BatchError::UnknownStep {
            step_id: "no-such-step".into(),
            flow_id: "gold-refining".into(),
            flow_version: 1
        }
    );
    let mut run = Run::done();
    assert_eq!(
        run.err(&admin(), complete("assay-photo", photo(HASH))),
        BatchError::NoStepsLeft
    );
}

#[test]
fn operators_work_only_at_their_stations() {
    let mut run = Run::gold();
    run.ok(&op_assay(), BatchCommand::Start);
    assert_eq!(
        run.err(&op_assay(), complete("recv-read", ack())),
        BatchError::NotYourStation {
            station_id: "receiving".into()
        }
    );
    // A supervisor is bound to their stations too.
    let elsewhere = actor("sup-3", Role::Supervisor, &["refining"]);
    assert!(matches!(
        run.err(&elsewhere, complete("recv-read", ack())),
        BatchError::NotYourStation { .. }
    ));
    // An admin works anywhere.
    run.ok(&admin(), complete("recv-read", ack()));
    let mut run = Run::at_assay();
    assert!(matches!(
        run.err(&op_recv(), complete("assay-sign", sign("Verified by"))),
        BatchError::NotYourStation { .. }
    ));
    // Nor can an operator flag a step at a station that is not theirs.
    assert!(matches!(
        run.err(&op_recv(), raise("odd colour")),
        BatchError::NotYourStation { .. }
    ));
    run.ok(&op_assay(), complete("assay-sign", sign("Verified by")));
}

#[test]
fn the_payload_must_match_the_step_type() {
    let mut run = Run::gold();
    run.ok(&op_recv(), BatchCommand::Start);
    assert_eq!(
        run.err(&op_recv(), complete("recv-read", photo(HASH))),
        BatchError::WrongStepType {
            step_id: "recv-read".into(),
            expected: "instruction",
            got: "photo"
        }
    );
    assert_eq!(
        run.err(&op_recv(), weigh("recv-read", g("150"), None)),
        BatchError::WrongStepType {
            step_id: "recv-read".into(),
            expected: "instruction",
            got: "mass_check"
        }
    );
    // A mass check is done only by recording a mass.
    let mut run = Run::at_weigh();
    assert_eq!(
        run.err(&op_recv(), complete("recv-weigh", ack())),
        BatchError::WrongStepType {
            step_id: "recv-weigh".into(),
            expected: "mass_check",
            got: "instruction"
        }
    );
}

#[test]
fn an_instruction_must_be_acknowledged() {
    let mut run = Run::gold();
    run.ok(&op_recv(), BatchCommand::Start);
    assert_eq!(
        run.err(
            &op_recv(),
            complete(
                "recv-read",
                StepPayload::Instruction {
                    acknowledged: false
                }
            )
        ),
        BatchError::NotAcknowledged
    );
}

#[test]
fn every_checklist_item_must_be_checked_and_nothing_else() {
    let mut run = Run::gold();
    run.ok(&op_recv(), BatchCommand::Start);
    run.ok(&op_recv(), complete("recv-read", ack()));
    assert_eq!(
        run.err(
            &op_recv(),
            complete("recv-check", checked(&["Seal intact"]))
        ),
        BatchError::ChecklistIncomplete {
            missing: vec!["Label matches".into()]
        }
    );
    assert_eq!(
        run.err(&op_recv(), complete("recv-check", checked(&[]))),
        BatchError::ChecklistIncomplete {
            missing: vec!["Seal intact".into(), "Label matches".into()]
        }
    );
    assert_eq!(
        run.err(
            &op_recv(),
            complete(
                "recv-check",
                checked(&["Seal intact", "Label matches", "Extra"])
            )
        ),
        BatchError::ChecklistUnknownItems {
            unknown: vec!["Extra".into()]
        }
    );
}

#[test]
fn the_signature_meaning_must_match() {
    let mut run = Run::at_assay();
    assert_eq!(
        run.err(&op_assay(), complete("assay-sign", sign("Released by"))),
        BatchError::WrongSignatureMeaning {
            expected: "Verified by".into()
        }
    );
    assert!(matches!(
        run.err(&op_assay(), complete("assay-sign", sign("verified by"))),
        BatchError::WrongSignatureMeaning { .. }
    ));
}

#[test]
fn a_photo_reference_is_a_lowercase_sha256() {
    let mut run = Run::at_assay();
    run.ok(&op_assay(), complete("assay-sign", sign("Verified by")));
    for bad in [
        "".to_string(),
        HASH.to_uppercase(),
        HASH[..63].to_string(),
        format!("{HASH}0"),
        HASH.replace('e', "g"),
        "photo.jpg".to_string(),
    ] {
        assert_eq!(
            run.err(&op_assay(), complete("assay-photo", photo(&bad))),
            BatchError::BadPhotoReference,
            "{bad:?}"
        );
    }
    run.ok(&op_assay(), complete("assay-photo", photo(HASH)));
}
