//! The batch aggregate, event-sourced.
//!
//! A batch's state is the fold of its events ([`BatchState::replay`]). A command is checked
//! against the current state and the pinned flow version by [`BatchState::decide`], which
//! returns the new events or a typed [`BatchError`] and never changes anything; the caller
//! appends the events with the state's `version` as the expected version (optimistic
//! concurrency) and folds them in with [`BatchState::apply`].
//!
//! State machine: `created → in_progress → completed`; `in_progress ⇄ flagged` (an open flag
//! waits for a supervisor's or admin's decision); any non-completed state → `blocked`, and only
//! an admin unblocks, back to the state it was blocked from. Steps run strictly in flow order;
//! going back needs an admin override with a reason.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::flow::{Flow, FlowContent, FlowError, StepKind};
use crate::mass::Mass;
use crate::role::{Actor, Permission, Role};
use crate::tolerance::{Tolerance, ToleranceCheck};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Created,
    InProgress,
    Flagged,
    Blocked,
    Completed,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Created => "created",
            BatchStatus::InProgress => "in_progress",
            BatchStatus::Flagged => "flagged",
            BatchStatus::Blocked => "blocked",
            BatchStatus::Completed => "completed",
        }
    }
}

impl std::str::FromStr for BatchStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "created" => Ok(BatchStatus::Created),
            "in_progress" => Ok(BatchStatus::InProgress),
            "flagged" => Ok(BatchStatus::Flagged),
            "blocked" => Ok(BatchStatus::Blocked),
            "completed" => Ok(BatchStatus::Completed),
            other => Err(format!(
                "unknown batch status {other:?}; use created, in_progress, flagged, blocked or completed"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Normal,
    High,
}

/// What an operator hands in to complete a step other than a mass check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepPayload {
    Instruction {
        acknowledged: bool,
    },
    Checklist {
        /// The items the operator ticked; all of the step's items are required.
        checked: Vec<String>,
    },
    /// The caller has re-authenticated the signer before issuing this command.
    Signature {
        meaning: String,
    },
    Photo {
        /// SHA-256 of the photo, lowercase hex.
        photo_sha256: String,
    },
}

impl StepPayload {
    pub fn type_name(&self) -> &'static str {
        match self {
            StepPayload::Instruction { .. } => "instruction",
            StepPayload::Checklist { .. } => "checklist",
            StepPayload::Signature { .. } => "signature",
            StepPayload::Photo { .. } => "photo",
        }
    }
}

/// Where a measured mass came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MassSource {
    /// Typed in by the operator.
    Manual,
    /// A signed reading from an enrolled device.
    Device { device_id: String, sequence: u64 },
    /// Read from a photo of the display with at least the acceptance confidence.
    Ocr {
        confidence: rust_decimal::Decimal,
        /// The photo read (lowercase hex SHA-256); absent in events written before photos
        /// were kept as evidence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        photo_sha256: Option<String>,
    },
    /// Typed in by the operator because the photo of the display could not be read. Always
    /// flagged for approval: nothing but the operator vouches for the value.
    ManualUnreadablePhoto {
        /// The photo that could not be read (lowercase hex SHA-256).
        photo_sha256: String,
    },
}

impl MassSource {
    /// The photo this mass was read from or entered for, if any.
    pub fn photo_sha256(&self) -> Option<&str> {
        match self {
            MassSource::Ocr { photo_sha256, .. } => photo_sha256.as_deref(),
            MassSource::ManualUnreadablePhoto { photo_sha256 } => Some(photo_sha256),
            MassSource::Manual | MassSource::Device { .. } => None,
        }
    }

    /// Typed in by a person (with or without an unreadable photo).
    pub fn is_manual(&self) -> bool {
        matches!(
            self,
            MassSource::Manual | MassSource::ManualUnreadablePhoto { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// A mass check outside its tolerance; approving accepts the deviation and completes the step.
    OutOfTolerance,
    /// Raised by a person; approving clears it and the batch continues where it was.
    Manual,
    /// The display in a device reading's photo, read by OCR, differs from the signed serial
    /// value by more than the display's resolution. The signed value stands; approving
    /// clears the flag and the batch continues where it was.
    OcrMismatch,
    /// A mass typed in because the photo of the display could not be read, within
    /// tolerance; approving accepts the value and completes the step (as
    /// [`FlagKind::OutOfTolerance`] does).
    ManualEntry,
}

impl FlagKind {
    /// Approving this kind accepts the recorded mass and completes its step.
    pub fn approval_completes_step(self) -> bool {
        matches!(self, FlagKind::OutOfTolerance | FlagKind::ManualEntry)
    }
}

/// Something to do to a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum BatchCommand {
    Start,
    CompleteStep {
        step_id: String,
        payload: StepPayload,
    },
    RecordMassCheck {
        step_id: String,
        actual: Mass,
        source: MassSource,
        /// The operator's explanation; shown to the approver when out of tolerance.
        note: Option<String>,
    },
    RaiseFlag {
        reason: String,
    },
    /// The OCR cross-check of a recorded device mass check: the value read from the photo of
    /// the scale's display beside the signed serial value. Raises an
    /// [`FlagKind::OcrMismatch`] flag when they differ by more than `resolution` (the
    /// display's last digit); otherwise it yields no events.
    CrossCheckDisplay {
        step_id: String,
        serial: Mass,
        display: Mass,
        resolution: Mass,
    },
    ApproveFlag {
        flag_id: u64,
        reason: String,
    },
    RejectFlag {
        flag_id: u64,
        reason: String,
    },
    Block {
        reason: String,
    },
    Unblock {
        reason: String,
    },
    /// Admin only: move back to an earlier step.
    Override {
        to_step_id: String,
        reason: String,
    },
    Complete,
}

/// A fact about a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BatchEvent {
    Created {
        batch_id: Uuid,
        batch_number: String,
        pipeline: String,
        flow_id: String,
        flow_version: u32,
        priority: Priority,
        /// Number of steps of the pinned flow version.
        step_count: usize,
    },
    Started,
    StepCompleted {
        station_id: String,
        step_id: String,
        /// Flat index of the completed step in the flow.
        step_index: usize,
        /// `None` for a mass check (its result is the preceding `MassChecked`).
        payload: Option<StepPayload>,
    },
    MassChecked {
        station_id: String,
        step_id: String,
        step_index: usize,
        expected: Mass,
        tolerance: Tolerance,
        actual: Mass,
        check: ToleranceCheck,
        source: MassSource,
        note: Option<String>,
    },
    FlagRaised {
        /// The sequence number of this event, unique within the batch.
        flag_id: u64,
        kind: FlagKind,
        station_id: String,
        step_id: String,
        step_index: usize,
        reason: String,
    },
    FlagApproved {
        flag_id: u64,
        reason: String,
    },
    FlagRejected {
        flag_id: u64,
        reason: String,
    },
    Blocked {
        reason: String,
    },
    Unblocked {
        reason: String,
    },
    Overridden {
        from_index: usize,
        to_index: usize,
        to_step_id: String,
        reason: String,
    },
    Completed,
}

impl BatchEvent {
    pub fn type_name(&self) -> &'static str {
        match self {
            BatchEvent::Created { .. } => "created",
            BatchEvent::Started => "started",
            BatchEvent::StepCompleted { .. } => "step_completed",
            BatchEvent::MassChecked { .. } => "mass_checked",
            BatchEvent::FlagRaised { .. } => "flag_raised",
            BatchEvent::FlagApproved { .. } => "flag_approved",
            BatchEvent::FlagRejected { .. } => "flag_rejected",
            BatchEvent::Blocked { .. } => "blocked",
            BatchEvent::Unblocked { .. } => "unblocked",
            BatchEvent::Overridden { .. } => "overridden",
            BatchEvent::Completed => "completed",
        }
    }
}

/// Who did it, as recorded on each event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventActor {
    pub user_id: String,
    pub username: String,
    pub role: Role,
}

impl From<&Actor> for EventActor {
    fn from(a: &Actor) -> Self {
        EventActor {
            user_id: a.user_id.clone(),
            username: a.username.clone(),
            role: a.role,
        }
    }
}

/// An event as stored: the fact plus its identity, order, time and author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    /// 1-based position in the batch's stream; equals the batch version after applying it.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: EventActor,
    #[serde(flatten)]
    pub event: BatchEvent,
}

/// A flag and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub flag_id: u64,
    pub kind: FlagKind,
    pub station_id: String,
    pub step_id: String,
    pub step_index: usize,
    pub reason: String,
    pub raised_by: EventActor,
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
    pub resolution: Option<FlagResolution>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagResolution {
    pub approved: bool,
    pub by: EventActor,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The current state of a batch: the fold of its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchState {
    pub batch_id: Uuid,
    pub batch_number: String,
    pub pipeline: String,
    pub flow_id: String,
    pub flow_version: u32,
    pub priority: Priority,
    pub status: BatchStatus,
    pub step_count: usize,
    /// Flat index of the step waiting to be done; `step_count` once all steps are done.
    pub cursor: usize,
    /// Number of events applied; the expected version for the next append.
    pub version: u64,
    pub flags: Vec<Flag>,
    /// The status to return to when unblocked.
    pub blocked_from: Option<BatchStatus>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Why a command is refused. Messages are meant for the person at the kiosk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("your role ({role}) may not {action}")]
    Forbidden { role: Role, action: &'static str },
    #[error("you are not assigned to station {station_id}")]
    NotYourStation { station_id: String },
    #[error("the batch is {status}; cannot {action}")]
    WrongStatus {
        status: &'static str,
        action: &'static str,
    },
    #[error("step {step_id} does not exist in flow {flow_id} version {flow_version}")]
    UnknownStep {
        step_id: String,
        flow_id: String,
        flow_version: u32,
    },
    #[error("step {step_id} is not the current step; the current step is {current}")]
    NotCurrentStep { step_id: String, current: String },
    #[error("all steps are already done")]
    NoStepsLeft,
    #[error("step {step_id} is a {expected} step, not {got}")]
    WrongStepType {
        step_id: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("the instruction must be acknowledged")]
    NotAcknowledged,
    #[error("checklist items not checked: {}", .missing.join(", "))]
    ChecklistIncomplete { missing: Vec<String> },
    #[error("checklist items not on the list: {}", .unknown.join(", "))]
    ChecklistUnknownItems { unknown: Vec<String> },
    #[error("the signature meaning must be {expected:?}")]
    WrongSignatureMeaning { expected: String },
    #[error("a photo reference must be a SHA-256 in lowercase hex")]
    BadPhotoReference,
    #[error("a reason is required")]
    ReasonRequired,
    #[error("flag {flag_id} does not exist or is already decided")]
    NoSuchOpenFlag { flag_id: u64 },
    #[error("you raised this flag yourself; another supervisor or an admin must decide it")]
    OwnFlag,
    #[error("the batch has {open} open flag(s); they must be decided first")]
    OpenFlags { open: usize },
    #[error("the override target must be an earlier step than the current one")]
    OverrideNotBackward,
    #[error("{remaining} step(s) are not done yet")]
    StepsRemaining { remaining: usize },
    #[error("the flow has no steps")]
    EmptyFlow,
    #[error("the batch pins flow {pinned}, not {given}")]
    FlowMismatch { pinned: String, given: String },
    #[error(transparent)]
    Flow(#[from] FlowError),
}

/// An event stream that does not fold into a state: corrupted or foreign data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("an event stream must start with `created`")]
    NotStartedWithCreated,
    #[error("no events")]
    Empty,
    #[error("event {seq} is out of order (expected {expected})")]
    OutOfOrder { seq: u64, expected: u64 },
    #[error("event {seq} ({event}) does not fit the state: {why}")]
    Inconsistent {
        seq: u64,
        event: &'static str,
        why: &'static str,
    },
}

/// A reason must say something.
fn require_reason(reason: &str) -> Result<String, BatchError> {
    let r = reason.trim();
    if r.is_empty() {
        Err(BatchError::ReasonRequired)
    } else {
        Ok(r.to_string())
    }
}

fn require(actor: &Actor, p: Permission, action: &'static str) -> Result<(), BatchError> {
    if actor.can(p) {
        Ok(())
    } else {
        Err(BatchError::Forbidden {
            role: actor.role,
            action,
        })
    }
}

/// Whether the value read from a photo of the scale's display differs from the signed
/// serial value by more than `resolution` (the display's last digit): the rule behind an
/// [`FlagKind::OcrMismatch`] flag, and what the evidence pages say about a frame.
pub fn display_differs(serial: &Mass, display: &Mass, resolution: &Mass) -> bool {
    let unit = serial.unit();
    let gap = (display.to_unit(unit).value() - serial.value()).abs();
    gap > resolution.to_unit(unit).value().abs()
}

impl BatchState {
    /// The `created` event for a new batch on `flow` (which must be startable at `now`).
    pub fn create(
        batch_id: Uuid,
        batch_number: String,
        flow: &Flow,
        priority: Priority,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<BatchEvent, BatchError> {
        require(actor, Permission::CreateBatches, "create batches")?;
        flow.check_startable(now)?;
        let step_count = flow.content.step_count();
        if step_count == 0 {
            return Err(BatchError::EmptyFlow);
        }
        Ok(BatchEvent::Created {
            batch_id,
            batch_number,
            pipeline: flow.content.pipeline.clone(),
            flow_id: flow.flow_id.clone(),
            flow_version: flow.version,
            priority,
            step_count,
        })
    }

    /// Open (undecided) flags.
    pub fn open_flags(&self) -> impl Iterator<Item = &Flag> {
        self.flags.iter().filter(|f| f.resolution.is_none())
    }

    fn step_label(flow: &FlowContent, index: usize) -> String {
        flow.step_at(index)
            .map(|(_, s)| s.step_id.clone())
            .unwrap_or_else(|| "(none: all steps done)".to_string())
    }

    fn wrong_status(&self, action: &'static str) -> BatchError {
        BatchError::WrongStatus {
            status: self.status.as_str(),
            action,
        }
    }

    /// Resolves `step_id` to the current step, checking order and station scope.
    fn current_step<'f>(
        &self,
        flow: &'f FlowContent,
        actor: &Actor,
        step_id: &str,
    ) -> Result<(usize, &'f crate::flow::Station, &'f crate::flow::Step), BatchError> {
        let index = flow
            .index_of(step_id)
            .ok_or_else(|| BatchError::UnknownStep {
                step_id: step_id.to_string(),
                flow_id: self.flow_id.clone(),
                flow_version: self.flow_version,
            })?;
        if self.cursor >= self.step_count {
            return Err(BatchError::NoStepsLeft);
        }
        if index != self.cursor {
            return Err(BatchError::NotCurrentStep {
                step_id: step_id.to_string(),
                current: Self::step_label(flow, self.cursor),
            });
        }
        let (station, step) = flow.step_at(index).ok_or(BatchError::NoStepsLeft)?;
        if !actor.may_operate_at(&station.station_id) {
            return Err(BatchError::NotYourStation {
                station_id: station.station_id.clone(),
            });
        }
        Ok((index, station, step))
    }

    /// Checks `command` against this state and the pinned flow content; returns the events
    /// it produces. `next_seq` is not needed: flag ids are the sequence numbers the events
    /// will get, derived from `self.version`.
    pub fn decide(
        &self,
        flow: &FlowContent,
        actor: &Actor,
        command: &BatchCommand,
    ) -> Result<Vec<BatchEvent>, BatchError> {
        if flow.step_count() != self.step_count {
            return Err(BatchError::FlowMismatch {
                pinned: format!("{} v{}", self.flow_id, self.flow_version),
                given: format!("a flow with {} steps", flow.step_count()),
            });
        }
        use BatchCommand as C;
        use BatchStatus as S;
        match command {
            C::Start => {
                require(actor, Permission::ExecuteSteps, "start batches")?;
                if self.status != S::Created {
                    return Err(self.wrong_status("start it"));
                }
                Ok(vec![BatchEvent::Started])
            }
            C::CompleteStep { step_id, payload } => {
                require(actor, Permission::ExecuteSteps, "execute steps")?;
                if self.status != S::InProgress {
                    return Err(self.wrong_status("complete a step"));
                }
                let (index, station, step) = self.current_step(flow, actor, step_id)?;
                check_payload(step_id, &step.kind, payload)?;
                Ok(vec![BatchEvent::StepCompleted {
                    station_id: station.station_id.clone(),
                    step_id: step.step_id.clone(),
                    step_index: index,
                    payload: Some(normalize_payload(payload)),
                }])
            }
            C::RecordMassCheck {
                step_id,
                actual,
                source,
                note,
            } => {
                require(actor, Permission::ExecuteSteps, "record mass checks")?;
                if self.status != S::InProgress {
                    return Err(self.wrong_status("record a mass check"));
                }
                let (index, station, step) = self.current_step(flow, actor, step_id)?;
                let StepKind::MassCheck {
                    expected_mass,
                    unit,
                    tolerance,
                } = &step.kind
                else {
                    return Err(BatchError::WrongStepType {
                        step_id: step_id.clone(),
                        expected: step.kind.type_name(),
                        got: "mass_check",
                    });
                };
                // A flow that passed validation has a non-negative expected mass.
                let expected = Mass::new(*expected_mass, *unit).map_err(|_| {
                    BatchError::Flow(FlowError::Invalid(vec![crate::flow::FlowProblem {
                        path: format!("steps.{step_id}.expected_mass"),
                        message: "expected mass is negative".into(),
                    }]))
                })?;
                if let Some(sha) = source.photo_sha256() {
                    if !is_sha256_hex(sha) {
                        return Err(BatchError::BadPhotoReference);
                    }
                }
                let check = tolerance.check(&expected, actual);
                let note = note
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string);
                let within = check.within;
                let mut events = vec![BatchEvent::MassChecked {
                    station_id: station.station_id.clone(),
                    step_id: step.step_id.clone(),
                    step_index: index,
                    expected,
                    tolerance: *tolerance,
                    actual: *actual,
                    check,
                    source: source.clone(),
                    note: note.clone(),
                }];
                let unreadable = matches!(source, MassSource::ManualUnreadablePhoto { .. });
                if within && unreadable {
                    events.push(BatchEvent::FlagRaised {
                        flag_id: self.version + 2,
                        kind: FlagKind::ManualEntry,
                        station_id: station.station_id.clone(),
                        step_id: step.step_id.clone(),
                        step_index: index,
                        reason: match note {
                            Some(n) => {
                                format!("entered by hand, the display photo was unreadable: {n}")
                            }
                            None => "entered by hand, the display photo was unreadable".to_string(),
                        },
                    });
                } else if within {
                    events.push(BatchEvent::StepCompleted {
                        station_id: station.station_id.clone(),
                        step_id: step.step_id.clone(),
                        step_index: index,
                        payload: None,
                    });
                } else {
                    events.push(BatchEvent::FlagRaised {
                        // MassChecked gets version+1, the flag version+2.
                        flag_id: self.version + 2,
                        kind: FlagKind::OutOfTolerance,
                        station_id: station.station_id.clone(),
                        step_id: step.step_id.clone(),
                        step_index: index,
                        reason: note.unwrap_or_else(|| "mass out of tolerance".to_string()),
                    });
                }
                Ok(events)
            }
            C::RaiseFlag { reason } => {
                require(actor, Permission::RaiseFlag, "raise flags")?;
                if !matches!(self.status, S::InProgress | S::Flagged) {
                    return Err(self.wrong_status("raise a flag"));
                }
                let reason = require_reason(reason)?;
                let index = self.cursor.min(self.step_count.saturating_sub(1));
                let (station, step) = flow.step_at(index).ok_or(BatchError::EmptyFlow)?;
                if actor.role != Role::Admin
                    && actor.role != Role::Supervisor
                    && !actor.may_operate_at(&station.station_id)
                {
                    return Err(BatchError::NotYourStation {
                        station_id: station.station_id.clone(),
                    });
                }
                Ok(vec![BatchEvent::FlagRaised {
                    flag_id: self.version + 1,
                    kind: FlagKind::Manual,
                    station_id: station.station_id.clone(),
                    step_id: step.step_id.clone(),
                    step_index: index,
                    reason,
                }])
            }
            C::CrossCheckDisplay {
                step_id,
                serial,
                display,
                resolution,
            } => {
                require(actor, Permission::ExecuteSteps, "cross-check mass checks")?;
                if !matches!(self.status, S::InProgress | S::Flagged) {
                    return Err(self.wrong_status("flag an OCR mismatch"));
                }
                // The step must be a mass check this batch has reached.
                let unknown = || BatchError::UnknownStep {
                    step_id: step_id.clone(),
                    flow_id: self.flow_id.clone(),
                    flow_version: self.flow_version,
                };
                let index = flow.index_of(step_id).ok_or_else(unknown)?;
                if index > self.cursor {
                    return Err(BatchError::NotCurrentStep {
                        step_id: step_id.clone(),
                        current: Self::step_label(flow, self.cursor),
                    });
                }
                let (station, step) = flow.step_at(index).ok_or_else(unknown)?;
                if !matches!(step.kind, StepKind::MassCheck { .. }) {
                    return Err(BatchError::WrongStepType {
                        step_id: step_id.clone(),
                        expected: step.kind.type_name(),
                        got: "mass_check",
                    });
                }
                if !display_differs(serial, display, resolution) {
                    return Ok(vec![]);
                }
                Ok(vec![BatchEvent::FlagRaised {
                    flag_id: self.version + 1,
                    kind: FlagKind::OcrMismatch,
                    station_id: station.station_id.clone(),
                    step_id: step.step_id.clone(),
                    step_index: index,
                    reason: format!(
                        "the display reads {display}, the signed serial reading is {serial} \
                         (resolution {resolution}); the serial value stands"
                    ),
                }])
            }
            C::ApproveFlag { flag_id, reason } | C::RejectFlag { flag_id, reason } => {
                let approve = matches!(command, C::ApproveFlag { .. });
                require(actor, Permission::ApproveFlags, "decide flags")?;
                if self.status != S::Flagged {
                    return Err(self.wrong_status("decide a flag"));
                }
                let reason = require_reason(reason)?;
                let flag = self
                    .open_flags()
                    .find(|f| f.flag_id == *flag_id)
                    .ok_or(BatchError::NoSuchOpenFlag { flag_id: *flag_id })?;
                if flag.raised_by.user_id == actor.user_id {
                    return Err(BatchError::OwnFlag);
                }
                if !approve {
                    return Ok(vec![BatchEvent::FlagRejected {
                        flag_id: *flag_id,
                        reason,
                    }]);
                }
                let mut events = vec![BatchEvent::FlagApproved {
                    flag_id: *flag_id,
                    reason,
                }];
                // Approving an out-of-tolerance flag accepts the measured mass: the step is done.
                if flag.kind.approval_completes_step() && flag.step_index == self.cursor {
                    events.push(BatchEvent::StepCompleted {
                        station_id: flag.station_id.clone(),
                        step_id: flag.step_id.clone(),
                        step_index: flag.step_index,
                        payload: None,
                    });
                }
                Ok(events)
            }
            C::Block { reason } => {
                require(actor, Permission::BlockBatch, "block batches")?;
                if matches!(self.status, S::Blocked | S::Completed) {
                    return Err(self.wrong_status("block it"));
                }
                Ok(vec![BatchEvent::Blocked {
                    reason: require_reason(reason)?,
                }])
            }
            C::Unblock { reason } => {
                require(actor, Permission::UnblockBatch, "unblock batches")?;
                if self.status != S::Blocked {
                    return Err(self.wrong_status("unblock it"));
                }
                Ok(vec![BatchEvent::Unblocked {
                    reason: require_reason(reason)?,
                }])
            }
            C::Override { to_step_id, reason } => {
                require(actor, Permission::OverrideStep, "override steps")?;
                if !matches!(self.status, S::InProgress | S::Blocked) {
                    return Err(self.wrong_status("override a step"));
                }
                let reason = require_reason(reason)?;
                let to_index =
                    flow.index_of(to_step_id)
                        .ok_or_else(|| BatchError::UnknownStep {
                            step_id: to_step_id.clone(),
                            flow_id: self.flow_id.clone(),
                            flow_version: self.flow_version,
                        })?;
                if to_index >= self.cursor {
                    return Err(BatchError::OverrideNotBackward);
                }
                Ok(vec![BatchEvent::Overridden {
                    from_index: self.cursor,
                    to_index,
                    to_step_id: to_step_id.clone(),
                    reason,
                }])
            }
            C::Complete => {
                require(actor, Permission::ExecuteSteps, "complete batches")?;
                if self.status != S::InProgress {
                    return Err(self.wrong_status("complete it"));
                }
                let open = self.open_flags().count();
                if open > 0 {
                    return Err(BatchError::OpenFlags { open });
                }
                if self.cursor < self.step_count {
                    return Err(BatchError::StepsRemaining {
                        remaining: self.step_count - self.cursor,
                    });
                }
                Ok(vec![BatchEvent::Completed])
            }
        }
    }

    /// Folds a whole stream.
    pub fn replay(events: &[RecordedEvent]) -> Result<BatchState, ReplayError> {
        let (first, rest) = events.split_first().ok_or(ReplayError::Empty)?;
        let mut state = BatchState::from_created(first)?;
        for e in rest {
            state.apply(e)?;
        }
        Ok(state)
    }

    /// The state right after a `created` event.
    pub fn from_created(rec: &RecordedEvent) -> Result<BatchState, ReplayError> {
        let BatchEvent::Created {
            batch_id,
            batch_number,
            pipeline,
            flow_id,
            flow_version,
            priority,
            step_count,
        } = &rec.event
        else {
            return Err(ReplayError::NotStartedWithCreated);
        };
        if rec.seq != 1 {
            return Err(ReplayError::OutOfOrder {
                seq: rec.seq,
                expected: 1,
            });
        }
        Ok(BatchState {
            batch_id: *batch_id,
            batch_number: batch_number.clone(),
            pipeline: pipeline.clone(),
            flow_id: flow_id.clone(),
            flow_version: *flow_version,
            priority: *priority,
            status: BatchStatus::Created,
            step_count: *step_count,
            cursor: 0,
            version: 1,
            flags: Vec::new(),
            blocked_from: None,
            created_at: rec.at,
            started_at: None,
            completed_at: None,
            updated_at: rec.at,
        })
    }

    /// Folds one recorded event into the state. Refuses events that a correct `decide` could
    /// not have produced, so a tampered stream does not fold silently.
    pub fn apply(&mut self, rec: &RecordedEvent) -> Result<(), ReplayError> {
        let expected = self.version + 1;
        if rec.seq != expected {
            return Err(ReplayError::OutOfOrder {
                seq: rec.seq,
                expected,
            });
        }
        let bad = |why: &'static str| ReplayError::Inconsistent {
            seq: rec.seq,
            event: rec.event.type_name(),
            why,
        };
        use BatchEvent as E;
        use BatchStatus as S;
        match &rec.event {
            E::Created { .. } => return Err(bad("a batch is created only once")),
            E::Started => {
                if self.status != S::Created {
                    return Err(bad("only a created batch starts"));
                }
                self.status = S::InProgress;
                self.started_at = Some(rec.at);
            }
            E::StepCompleted { step_index, .. } => {
                if *step_index != self.cursor || self.cursor >= self.step_count {
                    return Err(bad("not the current step"));
                }
                if !matches!(self.status, S::InProgress | S::Flagged) {
                    return Err(bad("steps complete only while in progress"));
                }
                self.cursor += 1;
            }
            E::MassChecked { step_index, .. } => {
                if *step_index != self.cursor || self.status != S::InProgress {
                    return Err(bad("not the current step"));
                }
            }
            E::FlagRaised {
                flag_id,
                kind,
                station_id,
                step_id,
                step_index,
                reason,
            } => {
                if *flag_id != rec.seq {
                    return Err(bad("flag id must equal the event sequence"));
                }
                if !matches!(self.status, S::InProgress | S::Flagged) {
                    return Err(bad("flags are raised only while in progress"));
                }
                self.flags.push(Flag {
                    flag_id: *flag_id,
                    kind: *kind,
                    station_id: station_id.clone(),
                    step_id: step_id.clone(),
                    step_index: *step_index,
                    reason: reason.clone(),
                    raised_by: rec.actor.clone(),
                    raised_at: rec.at,
                    resolution: None,
                });
                self.status = S::Flagged;
            }
            E::FlagApproved { flag_id, reason } | E::FlagRejected { flag_id, reason } => {
                let approved = matches!(rec.event, E::FlagApproved { .. });
                if self.status != S::Flagged {
                    return Err(bad("flags are decided only while flagged"));
                }
                let flag = self
                    .flags
                    .iter_mut()
                    .find(|f| f.flag_id == *flag_id && f.resolution.is_none())
                    .ok_or_else(|| bad("no such open flag"))?;
                flag.resolution = Some(FlagResolution {
                    approved,
                    by: rec.actor.clone(),
                    reason: reason.clone(),
                    at: rec.at,
                });
                if self.open_flags().next().is_none() {
                    self.status = S::InProgress;
                }
            }
            E::Blocked { .. } => {
                if matches!(self.status, S::Blocked | S::Completed) {
                    return Err(bad("cannot block now"));
                }
                self.blocked_from = Some(self.status);
                self.status = S::Blocked;
            }
            E::Unblocked { .. } => {
                if self.status != S::Blocked {
                    return Err(bad("not blocked"));
                }
                self.status = self.blocked_from.take().unwrap_or(S::InProgress);
            }
            E::Overridden {
                from_index,
                to_index,
                ..
            } => {
                if *from_index != self.cursor || *to_index >= self.cursor {
                    return Err(bad("an override moves back from the current step"));
                }
                self.cursor = *to_index;
            }
            E::Completed => {
                if self.status != S::InProgress
                    || self.cursor != self.step_count
                    || self.open_flags().next().is_some()
                {
                    return Err(bad("not ready to complete"));
                }
                self.status = S::Completed;
                self.completed_at = Some(rec.at);
            }
        }
        self.version = rec.seq;
        self.updated_at = rec.at;
        Ok(())
    }
}

/// A photo reference: 64 lowercase hex digits.
fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_payload(step_id: &str, kind: &StepKind, payload: &StepPayload) -> Result<(), BatchError> {
    match (kind, payload) {
        (StepKind::Instruction { .. }, StepPayload::Instruction { acknowledged }) => {
            if *acknowledged {
                Ok(())
            } else {
                Err(BatchError::NotAcknowledged)
            }
        }
        (StepKind::Checklist { items }, StepPayload::Checklist { checked }) => {
            let unknown: Vec<String> = checked
                .iter()
                .filter(|c| !items.contains(c))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(BatchError::ChecklistUnknownItems { unknown });
            }
            let missing: Vec<String> = items
                .iter()
                .filter(|i| !checked.contains(i))
                .cloned()
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(BatchError::ChecklistIncomplete { missing })
            }
        }
        (StepKind::Signature { meaning }, StepPayload::Signature { meaning: given }) => {
            if given.trim() == meaning.trim() {
                Ok(())
            } else {
                Err(BatchError::WrongSignatureMeaning {
                    expected: meaning.clone(),
                })
            }
        }
        (StepKind::Photo { .. }, StepPayload::Photo { photo_sha256 }) => {
            if is_sha256_hex(photo_sha256) {
                Ok(())
            } else {
                Err(BatchError::BadPhotoReference)
            }
        }
        (kind, payload) => Err(BatchError::WrongStepType {
            step_id: step_id.to_string(),
            expected: kind.type_name(),
            got: payload.type_name(),
        }),
    }
}

/// Stores what was agreed, trimmed.
fn normalize_payload(p: &StepPayload) -> StepPayload {
    match p {
        StepPayload::Signature { meaning } => StepPayload::Signature {
            meaning: meaning.trim().to_string(),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
