//! The built-in provider: `metcon-ocr`'s reader, loaded once from the model embedded in the
//! binary and run on blocking threads. At most two reads run at once, so a burst of uploads
//! queues instead of starving the API of CPU.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::{DisplayReader, DisplayText, OcrError};
use crate::photos::Image;
use crate::store::photos::Region;

const CONCURRENT_READS: usize = 2;

#[derive(Debug)]
pub struct Builtin {
    reader: Arc<metcon_ocr::Reader>,
    permits: Arc<Semaphore>,
}

impl Builtin {
    /// The model is loaded (and optimised) once per process, at start.
    pub fn load() -> anyhow::Result<Builtin> {
        static MODEL: OnceLock<Arc<metcon_ocr::Reader>> = OnceLock::new();
        let reader = match MODEL.get() {
            Some(r) => r.clone(),
            None => {
                let r = metcon_ocr::Reader::builtin()
                    .map_err(|e| anyhow::anyhow!("the built-in OCR model does not load: {e}"))?;
                MODEL.get_or_init(|| Arc::new(r)).clone()
            }
        };
        Ok(Builtin {
            reader,
            permits: Arc::new(Semaphore::new(CONCURRENT_READS)),
        })
    }
}

fn read(
    reader: &metcon_ocr::Reader,
    image: &image::DynamicImage,
    roi: Option<Region>,
) -> Result<DisplayText, OcrError> {
    let roi = roi.map(|r| metcon_ocr::Roi {
        x: r.x,
        y: r.y,
        w: r.w,
        h: r.h,
    });
    let r = reader.read(image, roi).map_err(|e| match e {
        metcon_ocr::OcrError::ImageTooSmall { .. } | metcon_ocr::OcrError::BadRoi(_) => {
            OcrError::Image(e.to_string())
        }
        other => OcrError::Provider(other.to_string()),
    })?;
    Ok(DisplayText {
        text: r.text,
        confidence: f64::from(r.confidence),
        region: Some(Region {
            x: r.region.x,
            y: r.region.y,
            w: r.region.w,
            h: r.region.h,
        }),
    })
}

#[async_trait]
impl DisplayReader for Builtin {
    fn name(&self) -> &'static str {
        "builtin"
    }

    async fn read(&self, image: &Image, roi: Option<Region>) -> Result<DisplayText, OcrError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| OcrError::Provider(e.to_string()))?;
        let (reader, decoded) = (self.reader.clone(), image.decoded.clone());
        tokio::task::spawn_blocking(move || read(&reader, &decoded, roi))
            .await
            .map_err(|e| OcrError::Provider(format!("the reader stopped: {e}")))?
    }
}
