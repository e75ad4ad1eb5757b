//! Frames from a USB or CSI camera through V4L2 (nokhwa), behind the `v4l2` cargo feature.
//!
//! The camera is owned by a dedicated thread (capture calls block, and nokhwa's camera is not
//! meant to move between threads); [`V4l2Source::grab`] sends it a request and awaits the
//! answer. Only MJPEG streams are accepted, so the bytes hashed and published are a JPEG
//! file exactly as the camera produced it, with no re-encoding on the device.

use std::sync::mpsc;

use async_trait::async_trait;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
};
use nokhwa::Camera;
use tokio::sync::oneshot;

use super::{CameraError, FrameSource, MAX_FRAME_BYTES};

type Reply = oneshot::Sender<Result<Vec<u8>, CameraError>>;

#[derive(Debug)]
pub struct V4l2Source {
    requests: mpsc::Sender<Reply>,
}

fn index(device: &str) -> CameraIndex {
    match device
        .strip_prefix("/dev/video")
        .and_then(|n| n.parse::<u32>().ok())
    {
        Some(n) => CameraIndex::Index(n),
        None => CameraIndex::String(device.to_string()),
    }
}

fn open(device: &str) -> Result<Camera, CameraError> {
    let err = |e: nokhwa::NokhwaError| CameraError::V4l2(format!("{device}: {e}"));
    let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(
        CameraFormat::new(Resolution::new(1280, 720), FrameFormat::MJPEG, 15),
    ));
    let mut camera = Camera::new(index(device), requested).map_err(err)?;
    if camera.camera_format().format() != FrameFormat::MJPEG {
        return Err(CameraError::V4l2(format!(
            "{device} does not deliver MJPEG (it offers {:?})",
            camera.camera_format()
        )));
    }
    camera.open_stream().map_err(err)?;
    Ok(camera)
}

impl V4l2Source {
    /// Starts the camera thread; the device is opened (and re-opened after errors) there.
    pub fn new(device: &str) -> V4l2Source {
        let (tx, rx) = mpsc::channel::<Reply>();
        let device = device.to_string();
        std::thread::Builder::new()
            .name("camera".into())
            .spawn(move || {
                let mut camera: Option<Camera> = None;
                for reply in rx {
                    if camera.is_none() {
                        match open(&device) {
                            Ok(c) => camera = Some(c),
                            Err(e) => {
                                let _ = reply.send(Err(e));
                                continue;
                            }
                        }
                    }
                    let Some(cam) = camera.as_mut() else { continue };
                    let result = match cam.frame() {
                        Ok(buf) if buf.buffer().len() > MAX_FRAME_BYTES => {
                            Err(CameraError::TooLarge(buf.buffer().len()))
                        }
                        Ok(buf) => Ok(buf.buffer().to_vec()),
                        Err(e) => {
                            camera = None; // unplugged? re-open next time
                            Err(CameraError::V4l2(format!("{device}: {e}")))
                        }
                    };
                    let _ = reply.send(result);
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the camera thread"));
        V4l2Source { requests: tx }
    }
}

#[async_trait]
impl FrameSource for V4l2Source {
    async fn grab(&mut self) -> Result<Vec<u8>, CameraError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(tx)
            .map_err(|_| CameraError::V4l2("camera thread stopped".into()))?;
        rx.await
            .map_err(|_| CameraError::V4l2("camera thread stopped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_camera_is_a_typed_error() {
        let mut src = V4l2Source::new("/dev/video-metcon-none");
        assert!(matches!(src.grab().await, Err(CameraError::V4l2(_))));
    }
}
