//! Admin: devices and their scales — the fleet list, one device's page (status, readings,
//! actions, calibration records, display region) — and the scale calibration pages that
//! supervisors use too.

use askama::Template;

use super::Layout;
use crate::qr::QrSvg;

/// Admin: devices.
#[derive(Debug, Template)]
#[template(path = "devices.html")]
pub struct DevicesPage {
    pub layout: Layout,
    pub devices: Vec<DeviceRow>,
    /// A just-created enrollment code, shown this once.
    pub code: Option<EnrollmentShown>,
    pub form: DeviceForm,
    /// The scale protocols the edge agent speaks.
    pub protocols: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub device_id: String,
    pub name: String,
    pub station: String,
    pub state: String,
    pub online: bool,
    pub revoked: bool,
}

/// A one-time enrollment code, as text, as the command to run and as a QR code.
#[derive(Debug, Clone)]
pub struct EnrollmentShown {
    pub device_id: String,
    pub code: String,
    pub expires: String,
    /// `metcon-edge enroll --server … --code …`
    pub command: String,
    /// What the QR code holds (`metcon-enroll:?url=…&code=…`).
    pub uri: String,
    pub qr: Option<QrSvg>,
    /// The box would enroll over plain HTTP: the code and the broker login it gets back
    /// travel unencrypted, so the page says to set `public_url`.
    pub plain_http: bool,
}

#[derive(Debug, Clone, Default)]
pub struct DeviceForm {
    pub device_id: String,
    pub name: String,
    pub site: String,
    pub station_id: String,
    pub protocol: String,
    pub port: String,
}

/// Admin: one device.
#[derive(Debug, Template)]
#[template(path = "device.html")]
pub struct DevicePage {
    pub layout: Layout,
    pub device_id: String,
    pub name: String,
    pub online: bool,
    pub state: String,
    /// Not enrolled yet: it may get an enrollment code.
    pub pending: bool,
    /// Enrolled and not revoked: it takes commands and key rotations.
    pub active: bool,
    pub revoked: bool,
    /// Status lines: label and value.
    pub facts: Vec<Fact>,
    pub code: Option<EnrollmentShown>,
    pub readings: Vec<ReadingRow>,
    pub calibration: CalibrationSection,
    pub region: RegionEditor,
}

#[derive(Debug, Clone)]
pub struct Fact {
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct ReadingRow {
    pub seq: String,
    pub at: String,
    pub value: String,
    pub stable: bool,
    /// The batch step it decided, or "unbound".
    pub bound: String,
    pub frame: bool,
}

/// A scale's calibration records, whether it may decide mass checks, and the form to add one.
#[derive(Debug, Clone, Default)]
pub struct CalibrationSection {
    /// Where the form posts.
    pub action: String,
    pub fit: bool,
    /// "The scale may decide mass checks." or why not.
    pub fitness: String,
    pub records: Vec<CalibrationRow>,
    pub form: CalibrationForm,
}

#[derive(Debug, Clone)]
pub struct CalibrationRow {
    pub kind: String,
    pub outcome: String,
    pub pass: bool,
    pub performed: String,
    pub performed_by: String,
    pub reference: String,
    pub next_due: String,
}

/// The calibration form as typed (shown again with its problems).
#[derive(Debug, Clone, Default)]
pub struct CalibrationForm {
    pub kind: String,
    pub outcome: String,
    /// `YYYY-MM-DDTHH:MM` (UTC), as a `datetime-local` input gives it.
    pub performed_at: String,
    /// `YYYY-MM-DD`.
    pub next_due: String,
    pub reference: String,
    pub performed_by: String,
    pub scale_serial: String,
    pub notes: String,
    pub problems: Vec<String>,
}

/// The display region drawn on the device's latest frame.
#[derive(Debug, Clone, Default)]
pub struct RegionEditor {
    pub frame: Option<FrameView>,
    /// The current region, e.g. "x 120, y 80, 400 × 150 px", or none set.
    pub current: String,
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    /// The rectangle drawn over the frame (the typed or saved values, when they are numbers).
    pub rect: Option<[u32; 4]>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct FrameView {
    pub url: String,
    pub width: u32,
    pub height: u32,
    /// "frame of reading 42, 2026-03-01 09:00:00 UTC"
    pub caption: String,
}

/// Scales and their calibration status, for those who record calibrations.
#[derive(Debug, Template)]
#[template(path = "scales.html")]
pub struct ScalesPage {
    pub layout: Layout,
    pub scales: Vec<ScaleRow>,
}

#[derive(Debug, Clone)]
pub struct ScaleRow {
    pub device_id: String,
    pub name: String,
    pub station: String,
    pub fit: bool,
    pub fitness: String,
}

/// One scale's calibration records (for those who may record calibrations but not manage
/// devices).
#[derive(Debug, Template)]
#[template(path = "calibrations.html")]
pub struct CalibrationsPage {
    pub layout: Layout,
    pub device_id: String,
    pub name: String,
    pub station: String,
    pub calibration: CalibrationSection,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(region: RegionEditor) -> DevicePage {
        DevicePage {
            layout: Layout {
                csrf: "tok".into(),
                ..Layout::default()
            },
            device_id: "scale-01".into(),
            name: "Scale <1>".into(),
            online: true,
            state: "active".into(),
            pending: false,
            active: true,
            revoked: false,
            facts: vec![Fact {
                label: "Clock skew".into(),
                value: "+1.2 s".into(),
            }],
            code: Some(EnrollmentShown {
                device_id: "scale-01".into(),
                code: "AAAA-BBBB-CCCC-DDDD".into(),
                expires: "2026-03-02 09:00:00 UTC".into(),
                command: "metcon-edge enroll --server http://x --code AAAA-BBBB-CCCC-DDDD".into(),
                uri: "metcon-enroll:?url=http%3A%2F%2Fx&code=AAAA-BBBB-CCCC-DDDD".into(),
                qr: QrSvg::encode("metcon-enroll:?url=http%3A%2F%2Fx&code=AAAA-BBBB-CCCC-DDDD"),
                plain_http: true,
            }),
            readings: vec![],
            calibration: CalibrationSection {
                action: "/admin/devices/scale-01/calibrations".into(),
                fit: false,
                fitness: "the scale has no recorded calibration".into(),
                form: CalibrationForm {
                    problems: vec!["Next due: not a date".into()],
                    ..CalibrationForm::default()
                },
                ..CalibrationSection::default()
            },
            region,
        }
    }

    #[test]
    fn the_device_page_shows_the_qr_code_escapes_names_and_tokens_every_form() {
        let html = page(RegionEditor::default()).render().expect("render");
        assert!(html.contains("Scale &#60;1&#62;") || html.contains("Scale &lt;1&gt;"));
        let block = &html[html.find(r#"id="enrollment""#).expect("enrollment block")..];
        assert!(block.contains("<svg "), "{block}");
        assert!(html.contains("AAAA-BBBB-CCCC-DDDD"));
        assert!(
            html.contains("id=\"enroll-plain-http\""),
            "an http:// server is warned about"
        );
        assert!(html.contains("Next due: not a date"));
        assert!(html.contains("may not decide mass checks"));
        assert!(html.contains("No frame from this device yet"));
        let forms = html.matches("<form method=\"post\"").count();
        let tokens = html.matches(r#"name="_csrf" value="tok""#).count();
        assert_eq!(forms, tokens, "{html}");
    }

    #[test]
    fn the_region_is_drawn_over_the_frame_in_image_pixels() {
        let html = page(RegionEditor {
            frame: Some(FrameView {
                url: "/admin/devices/scale-01/frame".into(),
                width: 640,
                height: 480,
                caption: "frame of reading 3".into(),
            }),
            x: "10".into(),
            y: "20".into(),
            w: "300".into(),
            h: "90".into(),
            rect: Some([10, 20, 300, 90]),
            ..RegionEditor::default()
        })
        .render()
        .expect("render");
        assert!(html.contains(r#"viewBox="0 0 640 480""#), "{html}");
        assert!(
            html.contains(r#"x="10" y="20" width="300" height="90""#),
            "{html}"
        );
        assert!(html.contains(r#"src="/admin/devices/scale-01/frame""#));
        assert!(!html.contains("style="), "no inline styles under the CSP");
    }
}
