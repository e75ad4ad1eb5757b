//! Bad input never panics: empty and tiny images, ROIs outside the image, undecodable bytes.

use image::{DynamicImage, GrayImage, RgbImage};
use metcon_ocr::{OcrError, Reader, Roi};

fn reader() -> Reader {
    match Reader::builtin() {
        Ok(r) => r,
        Err(e) => panic!("builtin model must load: {e}"),
    }
}

#[test]
fn empty_and_tiny_images_are_errors() {
    let r = reader();
    let empty = DynamicImage::ImageRgb8(RgbImage::new(0, 0));
    assert!(matches!(
        r.read(&empty, None),
        Err(OcrError::ImageTooSmall { .. })
    ));
    let one = DynamicImage::ImageLuma8(GrayImage::new(1, 1));
    assert!(matches!(
        r.read(&one, None),
        Err(OcrError::ImageTooSmall { .. })
    ));
    assert!(matches!(
        r.read(
            &one,
            Some(Roi {
                x: 0,
                y: 0,
                w: 1,
                h: 1
            })
        ),
        Err(OcrError::ImageTooSmall { .. })
    ));
}

#[test]
fn roi_outside_or_degenerate_is_an_error() {
    let r = reader();
    let img = DynamicImage::ImageRgb8(RgbImage::new(100, 60));
    assert!(matches!(
        r.read(
            &img,
            Some(Roi {
                x: 200,
                y: 0,
                w: 10,
                h: 10
            })
        ),
        Err(OcrError::BadRoi(_))
    ));
    assert!(matches!(
        r.read(
            &img,
            Some(Roi {
                x: 0,
                y: 0,
                w: 0,
                h: 0
            })
        ),
        Err(OcrError::BadRoi(_))
    ));
    // partly outside: clamped
    let ok = r.read(
        &img,
        Some(Roi {
            x: 50,
            y: 20,
            w: 500,
            h: 500,
        }),
    );
    match ok {
        Ok(reading) => assert_eq!(
            reading.region,
            Roi {
                x: 50,
                y: 20,
                w: 50,
                h: 40
            }
        ),
        Err(e) => panic!("clamped ROI should read: {e}"),
    }
}

#[test]
fn blank_images_read_as_nothing_confident() {
    let r = reader();
    for img in [
        DynamicImage::ImageRgb8(RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]))),
        DynamicImage::ImageLuma8(GrayImage::new(40, 12)),
        DynamicImage::ImageRgb8(RgbImage::from_fn(300, 200, |x, y| {
            image::Rgb([(x * 7 % 256) as u8, (y * 13 % 256) as u8, 90])
        })),
    ] {
        match r.read(&img, None) {
            Ok(reading) => assert!(
                reading.text.is_empty() || reading.confidence < 0.85,
                "blank image read as {:?} at {}",
                reading.text,
                reading.confidence
            ),
            Err(e) => panic!("blank image should give a reading, got {e}"),
        }
    }
}

#[test]
fn garbage_bytes_are_a_decode_error_for_the_caller() {
    let bytes = b"\xff\xd8\xff\xe0 this is not really a jpeg";
    assert!(image::load_from_memory(bytes).is_err());
    assert!(image::load_from_memory(&[]).is_err());
}

#[test]
fn reading_serialises() {
    let r = reader();
    let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 32, image::Rgb([200, 200, 200])));
    match r.read(
        &img,
        Some(Roi {
            x: 0,
            y: 0,
            w: 64,
            h: 32,
        }),
    ) {
        Ok(reading) => {
            let json = match serde_json::to_string(&reading) {
                Ok(j) => j,
                Err(e) => panic!("serialise: {e}"),
            };
            assert!(
                json.contains("\"confidence\"") && json.contains("\"region\""),
                "{json}"
            );
        }
        Err(e) => panic!("{e}"),
    }
}
