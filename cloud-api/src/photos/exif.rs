//! The EXIF fields worth keeping with a photo as evidence: which camera, when, how exposed.
//! A photo without EXIF (PNG, screenshots, most device frames) simply has none.

use std::collections::BTreeMap;

const KEPT: &[(exif::Tag, &str)] = &[
    (exif::Tag::Make, "make"),
    (exif::Tag::Model, "model"),
    (exif::Tag::DateTimeOriginal, "date_time_original"),
    (exif::Tag::OffsetTimeOriginal, "offset_time_original"),
    (exif::Tag::Orientation, "orientation"),
    (exif::Tag::ExposureTime, "exposure_time"),
    (exif::Tag::FNumber, "f_number"),
    (exif::Tag::PhotographicSensitivity, "iso"),
    (exif::Tag::FocalLength, "focal_length"),
    (exif::Tag::Software, "software"),
];

/// Longest value kept (EXIF strings come from the client).
const MAX_VALUE: usize = 128;

pub fn fields(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(data) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)) else {
        return out;
    };
    for (tag, name) in KEPT {
        if let Some(f) = data.get_field(*tag, exif::In::PRIMARY) {
            let v: String = f
                .display_value()
                .with_unit(&data)
                .to_string()
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_VALUE)
                .collect();
            let v = v.trim().trim_matches('"').trim().to_string();
            if !v.is_empty() {
                out.insert((*name).to_string(), v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal JPEG APP1 segment with a little-endian TIFF IFD holding Make = "METCON".
    fn jpeg_with_make() -> Vec<u8> {
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"II*\0");
        tiff.extend_from_slice(&8u32.to_le_bytes()); // IFD0 offset
        tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
        tiff.extend_from_slice(&0x010fu16.to_le_bytes()); // Make
        tiff.extend_from_slice(&2u16.to_le_bytes()); // ASCII
        tiff.extend_from_slice(&7u32.to_le_bytes()); // count incl. NUL
        tiff.extend_from_slice(&26u32.to_le_bytes()); // value offset
        tiff.extend_from_slice(&0u32.to_le_bytes()); // next IFD
        tiff.extend_from_slice(b"METCON\0");
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1];
        jpeg.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        jpeg.extend_from_slice(&app1);
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        jpeg
    }

    #[test]
    fn kept_fields_are_read_and_absent_exif_is_empty() {
        let f = fields(&jpeg_with_make());
        assert_eq!(f.get("make").map(String::as_str), Some("METCON"));
        assert!(fields(b"\x89PNG\r\n\x1a\n not really").is_empty());
        assert!(fields(b"").is_empty());
    }
}
