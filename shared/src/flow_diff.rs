//! What changed between two versions of a flow, in the words an auditor reads a change
//! request in: stations and steps added, removed or moved, and each field that changed with
//! its old and new value.
//!
//! Stations are matched by `station_id` and steps by `step_id` (ids are what batches and
//! reports refer to), so a renamed step is a change of its name, not a removal plus an
//! addition. Values are rendered exactly (masses as their decimals), never rounded.

use crate::flow::{FlowContent, Step, StepKind};

/// One difference between an older and a newer flow content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowChange {
    /// Where: "flow", "station receiving" or "step weigh-in (receiving)".
    pub subject: String,
    pub kind: ChangeKind,
    /// The field that changed ("name", "tolerance", "position"…); empty for additions and
    /// removals of a whole station or step.
    pub field: String,
    /// The old value, empty when added.
    pub before: String,
    /// The new value, empty when removed.
    pub after: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
    Moved,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
            ChangeKind::Moved => "moved",
        }
    }
}

/// The fields of a step as (name, value) pairs, in a fixed order per type.
fn step_fields(step: &Step) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("name", step.name.clone()),
        ("type", step.kind.type_name().to_string()),
    ];
    match &step.kind {
        StepKind::Instruction { text } => out.push(("text", text.clone())),
        StepKind::Checklist { items } => out.push(("items", items.join("; "))),
        StepKind::MassCheck {
            expected_mass,
            unit,
            tolerance,
        } => {
            out.push((
                "expected mass",
                format!("{expected_mass} {}", unit.symbol()),
            ));
            out.push(("tolerance", tolerance.to_string()));
        }
        StepKind::Signature { meaning } => out.push(("meaning", meaning.clone())),
        StepKind::Photo { prompt } => out.push(("prompt", prompt.clone())),
    }
    out
}

fn step_summary(step: &Step) -> String {
    let detail = step_fields(step)
        .into_iter()
        .skip(2)
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{} ({}) {detail}", step.name, step.kind.type_name())
        .trim_end()
        .to_string()
}

/// Every difference from `old` to `new`: flow fields first, then stations in the new order
/// (removed ones last), then steps in the new execution order (removed ones last).
pub fn diff(old: &FlowContent, new: &FlowContent) -> Vec<FlowChange> {
    let mut out = Vec::new();
    let mut change = |subject: String, kind, field: &str, before: String, after: String| {
        out.push(FlowChange {
            subject,
            kind,
            field: field.to_string(),
            before,
            after,
        })
    };
    for (field, a, b) in [
        ("name", &old.name, &new.name),
        ("pipeline", &old.pipeline, &new.pipeline),
    ] {
        if a != b {
            change(
                "flow".into(),
                ChangeKind::Changed,
                field,
                a.clone(),
                b.clone(),
            );
        }
    }

    let old_station_pos = |id: &str| old.stations.iter().position(|s| s.station_id == id);
    for (ni, st) in new.stations.iter().enumerate() {
        let subject = format!("station {}", st.station_id);
        match old_station_pos(&st.station_id) {
            None => change(
                subject,
                ChangeKind::Added,
                "",
                String::new(),
                format!("{} (position {})", st.name, ni + 1),
            ),
            Some(oi) => {
                let was = &old.stations[oi];
                if was.name != st.name {
                    change(
                        subject.clone(),
                        ChangeKind::Changed,
                        "name",
                        was.name.clone(),
                        st.name.clone(),
                    );
                }
                if oi != ni {
                    change(
                        subject,
                        ChangeKind::Moved,
                        "position",
                        (oi + 1).to_string(),
                        (ni + 1).to_string(),
                    );
                }
            }
        }
    }
    for st in &old.stations {
        if !new.stations.iter().any(|s| s.station_id == st.station_id) {
            change(
                format!("station {}", st.station_id),
                ChangeKind::Removed,
                "",
                st.name.clone(),
                String::new(),
            );
        }
    }

    // Steps: where each sits (station id and position within it).
    let place = |c: &FlowContent, id: &str| -> Option<(String, usize, Step)> {
        c.stations.iter().find_map(|s| {
            s.steps
                .iter()
                .position(|t| t.step_id == id)
                .map(|i| (s.station_id.clone(), i, s.steps[i].clone()))
        })
    };
    for (station, step) in new.steps() {
        let subject = format!("step {} ({})", step.step_id, station.station_id);
        let Some((old_station, old_index, was)) = place(old, &step.step_id) else {
            change(
                subject,
                ChangeKind::Added,
                "",
                String::new(),
                step_summary(step),
            );
            continue;
        };
        let new_index = station
            .steps
            .iter()
            .position(|t| t.step_id == step.step_id)
            .unwrap_or(0);
        if old_station != station.station_id {
            change(
                subject.clone(),
                ChangeKind::Moved,
                "station",
                old_station,
                station.station_id.clone(),
            );
        } else if old_index != new_index {
            change(
                subject.clone(),
                ChangeKind::Moved,
                "position",
                (old_index + 1).to_string(),
                (new_index + 1).to_string(),
            );
        }
        let before = step_fields(&was);
        let after = step_fields(step);
        for (field, b) in &after {
            let a = before
                .iter()
                .find(|(f, _)| f == field)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if &a != b {
                change(subject.clone(), ChangeKind::Changed, field, a, b.clone());
            }
        }
        for (field, a) in &before {
            if !after.iter().any(|(f, _)| f == field) {
                change(
                    subject.clone(),
                    ChangeKind::Changed,
                    field,
                    a.clone(),
                    String::new(),
                );
            }
        }
    }
    for (station, step) in old.steps() {
        if place(new, &step.step_id).is_none() {
            change(
                format!("step {} ({})", step.step_id, station.station_id),
                ChangeKind::Removed,
                "",
                step_summary(step),
                String::new(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Station;
    use crate::mass::MassUnit;
    use crate::tolerance::Tolerance;
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn weigh(id: &str, grams: i64, tol: &str) -> Step {
        Step {
            step_id: id.into(),
            name: "Weigh".into(),
            kind: StepKind::MassCheck {
                expected_mass: Decimal::from(grams),
                unit: MassUnit::G,
                tolerance: Tolerance::Absolute {
                    value: tol.parse().expect("decimal"),
                    unit: MassUnit::G,
                },
            },
        }
    }

    fn note(id: &str, text: &str) -> Step {
        Step {
            step_id: id.into(),
            name: "Read".into(),
            kind: StepKind::Instruction { text: text.into() },
        }
    }

    fn flow(stations: Vec<(&str, Vec<Step>)>) -> FlowContent {
        FlowContent {
            name: "Gold".into(),
            pipeline: "gold".into(),
            stations: stations
                .into_iter()
                .map(|(id, steps)| Station {
                    station_id: id.into(),
                    name: id.to_uppercase(),
                    steps,
                })
                .collect(),
        }
    }

    #[test]
    fn a_tolerance_change_names_the_step_and_both_values_exactly() {
        let a = flow(vec![("receiving", vec![weigh("weigh-in", 1000, "0.5")])]);
        let b = flow(vec![("receiving", vec![weigh("weigh-in", 1000, "0.25")])]);
        let d = diff(&a, &b);
        assert_eq!(
            d,
            vec![FlowChange {
                subject: "step weigh-in (receiving)".into(),
                kind: ChangeKind::Changed,
                field: "tolerance".into(),
                before: "±0.5 g".into(),
                after: "±0.25 g".into(),
            }]
        );
    }

    #[test]
    fn additions_removals_and_moves_are_told_apart_from_renames() {
        let a = flow(vec![
            (
                "receiving",
                vec![note("read", "x"), weigh("weigh-in", 1000, "0.5")],
            ),
            ("assay", vec![note("sample", "take one")]),
        ]);
        let mut b = flow(vec![
            (
                "receiving",
                vec![weigh("weigh-in", 1000, "0.5"), note("read", "x")],
            ),
            ("casting", vec![note("pour", "pour")]),
        ]);
        b.stations[0].name = "Goods in".into();
        let d = diff(&a, &b);
        let has = |subject: &str, kind: ChangeKind, field: &str| {
            d.iter()
                .any(|c| c.subject == subject && c.kind == kind && c.field == field)
        };
        assert!(
            has("station receiving", ChangeKind::Changed, "name"),
            "{d:?}"
        );
        assert!(has("station casting", ChangeKind::Added, ""), "{d:?}");
        assert!(has("station assay", ChangeKind::Removed, ""), "{d:?}");
        assert!(has(
            "step weigh-in (receiving)",
            ChangeKind::Moved,
            "position"
        ));
        assert!(has("step read (receiving)", ChangeKind::Moved, "position"));
        assert!(has("step pour (casting)", ChangeKind::Added, ""));
        assert!(has("step sample (assay)", ChangeKind::Removed, ""));
        assert_eq!(d.len(), 7, "{d:?}");
    }

    #[test]
    fn a_changed_type_lists_the_fields_that_went_and_came() {
        let a = flow(vec![("receiving", vec![note("check", "look")])]);
        let b = flow(vec![("receiving", vec![weigh("check", 5, "1")])]);
        let d = diff(&a, &b);
        let fields: Vec<&str> = d.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["name", "type", "expected mass", "tolerance", "text"]
        );
        assert_eq!(d[4].before, "look");
        assert_eq!(d[4].after, "");
    }

    proptest! {
        /// A flow compared with itself has no differences, whatever its steps.
        #[test]
        fn a_flow_equals_itself(grams in 1i64..100_000, tol in 0i64..100, n in 1usize..5) {
            let steps = (0..n).map(|i| weigh(&format!("w{i}"), grams, &tol.to_string())).collect();
            let f = flow(vec![("receiving", steps)]);
            prop_assert!(diff(&f, &f).is_empty());
        }

        /// Removing any one step is exactly one removal.
        #[test]
        fn removing_a_step_is_one_removal(n in 2usize..6, k in 0usize..6) {
            let k = k % n;
            let steps: Vec<Step> = (0..n).map(|i| note(&format!("s{i}"), "t")).collect();
            let a = flow(vec![("receiving", steps.clone())]);
            let mut fewer = steps;
            fewer.remove(k);
            let b = flow(vec![("receiving", fewer)]);
            let d = diff(&a, &b);
            let removed = d.iter().filter(|c| c.kind == ChangeKind::Removed).count();
            prop_assert_eq!(removed, 1);
        }
    }
}
