//! Server-side SVG charts drawn with `plotters` (SVG backend only, no font files: text is
//! emitted as SVG `<text>`). Each report charts one breakdown of its own document, so the
//! chart always agrees with the numbers on screen. Values become floats only here, for
//! drawing; every number shown as text comes from the exact report document.

use plotters::prelude::*;
use serde_json::Value;

use super::ReportName;

/// What a report charts: breakdown, label field, value field, title, y-axis label.
fn spec(
    name: ReportName,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
) {
    match name {
        ReportName::MassChecks => (
            "by_station",
            "station",
            "avg_abs_variance_pct",
            "Mean absolute variance by station",
            "%",
        ),
        ReportName::Wip => (
            "by_station",
            "station",
            "count",
            "Unfinished batches by station",
            "batches",
        ),
        ReportName::CycleTimes => (
            "by_station",
            "station",
            "median_s",
            "Median time at station",
            "s",
        ),
        ReportName::Exceptions => ("by_kind", "kind", "count", "Exceptions by kind", "count"),
        ReportName::MassBalance => (
            "by_station",
            "station",
            "change_g",
            "Mass change into each station",
            "g",
        ),
        ReportName::DeviceHealth => (
            "by_reason",
            "reason",
            "count",
            "Rejected messages by reason",
            "messages",
        ),
        ReportName::WeightList => (
            "by_pipeline",
            "pipeline",
            "fine_ozt",
            "Fine weight by pipeline",
            "ozt",
        ),
    }
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// The bar chart of a report document, as an SVG document.
pub fn svg(name: ReportName, doc: &Value) -> Result<String, String> {
    let (key, label, value, title, unit) = spec(name);
    let bars: Vec<(String, f64)> = doc["breakdowns"][key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| {
                    let l = b[label].as_str().unwrap_or("(none)");
                    (
                        if l.is_empty() { "(none)" } else { l }.to_string(),
                        number(&b[value]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let lo = bars.iter().map(|b| b.1).fold(0.0_f64, f64::min);
    let hi = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max);
    let pad = ((hi - lo) * 0.1).max(1e-9);
    let (lo, hi) = (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad);
    let n = bars.len().max(1);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (800, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((0..n as i32).into_segmented(), lo..hi)
            .map_err(|e| e.to_string())?;
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_desc(unit)
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i as i32), 0.0),
                        (SegmentValue::Exact(i as i32 + 1), *v),
                    ],
                    BLUE.mix(0.7).filled(),
                );
                bar.set_margin(0, 0, 12, 12);
                bar
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg_with_the_labels() {
        let doc = serde_json::json!({ "breakdowns": { "by_station": [
            { "station": "receiving", "avg_abs_variance_pct": "0.12" },
            { "station": "casting", "avg_abs_variance_pct": "0.3" },
        ]}});
        let svg = svg(ReportName::MassChecks, &doc).expect("draws");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains("receiving") && svg.contains("casting"));
        assert!(svg.contains("<rect"));
    }

    #[test]
    fn an_empty_report_still_draws() {
        let svg = svg(ReportName::Exceptions, &serde_json::json!({})).expect("draws");
        assert!(svg.contains("Exceptions by kind"));
    }
}
