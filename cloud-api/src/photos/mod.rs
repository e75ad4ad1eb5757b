//! Photos as they arrive: sniffed, decoded, checked for quality, described (size, EXIF), and
//! the short-lived signed URLs of the local photo folder.
//!
//! Parse, don't validate: [`Image::parse`] is the only way to an [`Image`], so a photo that
//! reaches OCR or the blob store is known to be a JPEG or PNG that decodes, of a sane size.

pub mod exif;
pub mod quality;
pub mod signed_url;

use std::sync::Arc;

use bytes::Bytes;

use crate::store::photos::{OcrResult, PhotoRecord, PhotoSource};

/// Largest side accepted (a 1080p or 12 MP phone photo is far below).
pub const MAX_SIDE: u32 = 8192;
/// Smallest side worth reading.
pub const MIN_SIDE: u32 = 32;
/// How far from its end a JPEG's end-of-image marker may be (trailing bytes some cameras
/// append after it).
const JPEG_TAIL: usize = 4096;

/// Why bytes are not a photo we keep.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is empty")]
    Empty,
    #[error("the photo is {size} bytes; at most {max} bytes are accepted")]
    TooLarge { size: usize, max: usize },
    #[error("the file is not a JPEG or PNG image")]
    NotAnImage,
    #[error("the image does not decode: {0}")]
    Corrupt(String),
    #[error("the JPEG is cut short (it has no end-of-image marker); upload it again")]
    Truncated,
    #[error("the image is {w}x{h} pixels; each side must be between {min} and {max}")]
    BadDimensions { w: u32, h: u32, min: u32, max: u32 },
}

/// A decoded JPEG or PNG with its original bytes.
#[derive(Debug, Clone)]
pub struct Image {
    pub bytes: Bytes,
    /// `image/jpeg` or `image/png`, from the bytes themselves.
    pub content_type: &'static str,
    pub decoded: Arc<image::DynamicImage>,
}

impl Image {
    /// Sniffs and decodes `bytes`; the client's content type is never trusted.
    pub fn parse(bytes: Bytes, max_bytes: usize) -> Result<Image, ImageError> {
        if bytes.is_empty() {
            return Err(ImageError::Empty);
        }
        if bytes.len() > max_bytes {
            return Err(ImageError::TooLarge {
                size: bytes.len(),
                max: max_bytes,
            });
        }
        let format = image::guess_format(&bytes).map_err(|_| ImageError::NotAnImage)?;
        let content_type = match format {
            image::ImageFormat::Jpeg => "image/jpeg",
            image::ImageFormat::Png => "image/png",
            _ => return Err(ImageError::NotAnImage),
        };
        // JPEG decoders fill a cut-off file with grey and carry on; evidence must be whole.
        // Inside entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so
        // an end-of-image marker near the end means the file is complete.
        if format == image::ImageFormat::Jpeg {
            let tail = &bytes[bytes.len().saturating_sub(JPEG_TAIL)..];
            if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
                return Err(ImageError::Truncated);
            }
        }
        let mut reader = image::ImageReader::with_format(std::io::Cursor::new(&bytes[..]), format);
        // Refuse decompression bombs before allocating their pixels.
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        limits.max_alloc = Some(512 * 1024 * 1024);
        reader.limits(limits);
        let decoded = reader.decode().map_err(|e| match e {
            image::ImageError::Limits(_) => ImageError::BadDimensions {
                w: 0,
                h: 0,
                min: MIN_SIDE,
                max: MAX_SIDE,
            },
            other => ImageError::Corrupt(other.to_string()),
        })?;
        let (w, h) = (decoded.width(), decoded.height());
        if w < MIN_SIDE || h < MIN_SIDE || w > MAX_SIDE || h > MAX_SIDE {
            return Err(ImageError::BadDimensions {
                w,
                h,
                min: MIN_SIDE,
                max: MAX_SIDE,
            });
        }
        Ok(Image {
            bytes,
            content_type,
            decoded: Arc::new(decoded),
        })
    }

    pub fn sha256(&self) -> String {
        crate::blobs::sha256_hex(&self.bytes)
    }

    /// The evidence record of this photo (size, dimensions, EXIF) for a batch step.
    pub fn evidence(
        &self,
        source: PhotoSource,
        batch_id: uuid::Uuid,
        step_id: &str,
        event_seq: Option<u64>,
        ocr: Option<OcrResult>,
    ) -> PhotoRecord {
        PhotoRecord {
            batch_id: Some(batch_id),
            step_id: Some(step_id.to_string()),
            event_seq,
            ocr,
            ..self.unbound(source, time::OffsetDateTime::now_utc())
        }
    }

    /// A record of this photo that belongs to no batch, as of `at`: a device frame that came
    /// with a reading nothing was armed for.
    pub fn unbound(&self, source: PhotoSource, at: time::OffsetDateTime) -> PhotoRecord {
        PhotoRecord {
            id: uuid::Uuid::new_v4(),
            sha256: self.sha256(),
            content_type: self.content_type.to_string(),
            size_bytes: self.bytes.len() as u64,
            width: self.decoded.width(),
            height: self.decoded.height(),
            exif: exif::fields(&self.bytes),
            source,
            batch_id: None,
            step_id: None,
            event_seq: None,
            ocr: None,
            uploaded_at: at,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PNG of `w`×`h` drawn by `f(x, y)` (grey levels).
    pub(crate) fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> Bytes {
        let img = image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageLuma8(img)
            .write_to(&mut out, image::ImageFormat::Png)
            .expect("encode png");
        Bytes::from(out.into_inner())
    }

    #[test]
    fn only_jpeg_and_png_that_decode_are_images() {
        let ok = png(64, 48, |x, _| (x * 4) as u8);
        let img = Image::parse(ok.clone(), 1 << 20).expect("png");
        assert_eq!(img.content_type, "image/png");
        assert_eq!((img.decoded.width(), img.decoded.height()), (64, 48));
        assert_eq!(
            Image::parse(Bytes::new(), 100).err(),
            Some(ImageError::Empty)
        );
        assert!(matches!(
            Image::parse(ok.clone(), 10),
            Err(ImageError::TooLarge { max: 10, .. })
        ));
        assert_eq!(
            Image::parse(Bytes::from_static(b"GIF89a......"), 1 << 20).err(),
            Some(ImageError::NotAnImage)
        );
        assert_eq!(
            Image::parse(Bytes::from_static(b"<html>not a photo</html>"), 1 << 20).err(),
            Some(ImageError::NotAnImage)
        );
        // A PNG signature with garbage after it.
        let mut broken = ok[..40].to_vec();
        broken.extend_from_slice(&[0u8; 64]);
        assert!(matches!(
            Image::parse(Bytes::from(broken), 1 << 20),
            Err(ImageError::Corrupt(_))
        ));
        // A JPEG cut short.
        let mut jpeg = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(200, 120, |x, y| {
            image::Luma([((x * 7 + y * 3) % 256) as u8])
        }))
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .expect("encode jpeg");
        let jpeg = jpeg.into_inner();
        assert!(Image::parse(Bytes::from(jpeg.clone()), 1 << 20).is_ok());
        assert_eq!(
            Image::parse(Bytes::from(jpeg[..jpeg.len() / 2].to_vec()), 1 << 20).err(),
            Some(ImageError::Truncated)
        );
        assert!(matches!(
            Image::parse(png(8, 8, |_, _| 0), 1 << 20),
            Err(ImageError::BadDimensions { w: 8, h: 8, .. })
        ));
    }
}
