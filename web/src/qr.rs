//! QR codes as inline SVG, drawn by the `qrcode` crate. [`QrSvg`] can only be made here, from
//! the crate's output, so a template may insert it unescaped: the text it encodes becomes
//! black and white modules, never markup.

use std::fmt;

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// An SVG image of a QR code, safe to put into a page as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrSvg(String);

impl QrSvg {
    /// The QR code of `text` (error correction M, with its quiet zone), or `None` when the
    /// text is too long for a QR code.
    pub fn encode(text: &str) -> Option<QrSvg> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
        let image = code
            .render::<svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build();
        // Inline in HTML the XML declaration is not wanted.
        let start = image.find("<svg").unwrap_or(0);
        Some(QrSvg(image[start..].to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QrSvg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qr_code_is_an_svg_of_modules_and_never_echoes_its_text() {
        let q = QrSvg::encode("metcon-enroll:?url=http%3A%2F%2Fx&code=<script>").expect("fits");
        let s = q.as_str();
        assert!(s.starts_with("<svg "), "{s}");
        assert!(s.ends_with("</svg>"), "{s}");
        assert!(s.contains("viewBox="));
        assert!(s.contains("<path"));
        assert!(!s.contains("script"));
        assert!(!s.contains("metcon-enroll"));
    }

    #[test]
    fn text_too_long_for_a_qr_code_gives_none() {
        assert!(QrSvg::encode(&"x".repeat(5000)).is_none());
    }
}
