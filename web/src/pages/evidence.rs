//! Photo evidence as the step runner and the approval queue show it: the photo (a camera
//! frame bound to a signed reading, or an operator's upload), where and when it came from,
//! and what OCR read in it. One partial (`evidence_photo.html`) renders a photo for both
//! pages, so an operator and a supervisor see the same evidence in the same words.

/// One photo as evidence.
#[derive(Debug, Clone, Default)]
pub struct EvidencePhoto {
    /// The same-origin image route (`/batches/{id}/photos/{photo_id}`): the viewer's access
    /// is checked on every request, and the page needs no third-party origin in its CSP.
    pub url: String,
    pub alt: String,
    /// The stored dimensions, so the page keeps its layout while the image loads.
    pub width: u32,
    pub height: u32,
    /// "camera frame of scale-01, signed reading 12" or "uploaded by olga".
    pub origin: String,
    /// When the photo arrived (and when the camera says it was taken, if it says).
    pub taken: String,
    pub ocr: Option<OcrView>,
}

/// What OCR read from a photo.
#[derive(Debug, Clone, Default)]
pub struct OcrView {
    /// "148.30 g", the digits as shown if they are not a number, or "nothing read".
    pub value: String,
    /// Calibrated probability that the digits are exactly right, as recorded ("0.9712").
    pub confidence: String,
    /// "accepted", "too uncertain: a re-take was asked for", "unreadable", "OCR failed: …".
    pub outcome: String,
    pub accepted: bool,
    /// Device frames: how the display compared with the signed reading; empty otherwise.
    pub cross_check: String,
    /// `Some(true)` agreed, `Some(false)` differed, `None` not compared.
    pub agrees: Option<bool>,
}

/// The evidence of one batch event (a mass check or a photo step), or of the waiting step.
#[derive(Debug, Clone, Default)]
pub struct EvidenceGroup {
    /// The element id history rows link to (`evidence-7`: the event's sequence number).
    pub anchor: String,
    /// "Mass check at weigh" or "Photo at lot-photo".
    pub title: String,
    /// The recorded mass ("1000.20 g"); empty for photo steps.
    pub reading: String,
    /// Where the value came from: a signed device reading, OCR, or a manual entry.
    pub source: String,
    /// When the event was recorded.
    pub at: String,
    pub photos: Vec<EvidencePhoto>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::{ApprovalRow, ApprovalsList, Layout};
    use askama::Template;

    fn photo() -> EvidencePhoto {
        EvidencePhoto {
            url: "/batches/b1/photos/p1".into(),
            alt: "Camera frame of scale-01 at weigh".into(),
            width: 640,
            height: 480,
            origin: "camera frame of scale-01, bound to its signed reading 12".into(),
            taken: "received 2026-12-02 12:55:01 UTC".into(),
            ocr: Some(OcrView {
                value: "1002.40 g".into(),
                confidence: "0.9900".into(),
                outcome: "accepted".into(),
                accepted: true,
                cross_check: "differs from the signed reading".into(),
                agrees: Some(false),
            }),
        }
    }

    #[test]
    fn an_ocr_mismatch_shows_both_values_and_a_lazy_thumbnail_that_opens_full_size() {
        let html = ApprovalsList {
            layout: Layout::default(),
            items: vec![ApprovalRow {
                batch_id: "b1".into(),
                number: "B-2026-0001".into(),
                version: 5,
                flag_id: 5,
                kind: "OCR mismatch".into(),
                station: "receiving".into(),
                step: "weigh".into(),
                reason: "the display reads 1002.40 g".into(),
                raised_by: "operator".into(),
                raised_at: "2026-12-02 12:55:03 UTC".into(),
                reading: Some("1000.20 g".into()),
                expected: Some("1000 g ± 0.5 g".into()),
                deviation: Some("+0.20 g".into()),
                source: Some("signed reading 12 of scale-01".into()),
                signed: Some("1000.20 g".into()),
                displayed: Some("1002.40 g".into()),
                photos: vec![photo()],
            }],
        }
        .render()
        .expect("render");
        assert!(
            html.contains(r#"<strong class="signed-value">1000.20 g</strong>"#),
            "{html}"
        );
        assert!(html.contains(r#"<strong class="displayed-value">1002.40 g</strong>"#));
        assert!(html.contains(r#"<a href="/batches/b1/photos/p1" target="_blank""#));
        assert!(html.contains(r#"loading="lazy""#));
        assert!(html.contains(r#"width="640" height="480""#));
        assert!(html.contains(r#"class="ocr-cross-check bad""#));
        assert!(!html.contains("style="), "the CSP forbids inline styles");
    }

    #[test]
    fn a_photo_step_photo_says_it_was_not_read() {
        let mut p = photo();
        p.ocr = None;
        let html = crate::pages::ApprovalsList {
            layout: Layout::default(),
            items: vec![],
        }
        .render()
        .expect("render");
        assert!(html.contains("Nothing waits"));
        // The partial alone, through a group.
        #[derive(Template)]
        #[template(path = "evidence_group.html")]
        struct One {
            g: EvidenceGroup,
        }
        let html = One {
            g: EvidenceGroup {
                anchor: "evidence-5".into(),
                title: "Photo at lot-photo".into(),
                reading: String::new(),
                source: "photo uploaded for the step".into(),
                at: "2026-12-02 12:56:00 UTC".into(),
                photos: vec![p],
            },
        }
        .render()
        .expect("render");
        assert!(html.contains(r#"id="evidence-5""#));
        assert!(html.contains("not read (photo step)"));
        assert!(!html.contains("Reading</dt>"));
    }
}
