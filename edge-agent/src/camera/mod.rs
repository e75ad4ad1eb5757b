//! Camera frame sources. A frame is taken when a reading is captured; its SHA-256 goes into
//! the signed reading and the bytes travel on the `photo` topic.
//!
//! One trait, several sources: an image file or folder (setups and tests without a camera),
//! an HTTP snapshot URL (IP cameras), and V4L2 through nokhwa behind the `v4l2` cargo
//! feature (it needs `libclang-dev` to build, so default builds leave it out).

use async_trait::async_trait;

pub mod file;
pub mod http;
#[cfg(feature = "v4l2")]
pub mod v4l2;

/// Largest frame accepted (bytes).
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("no image files in {0}")]
    Empty(String),
    #[error("frame is {0} bytes; the limit is {MAX_FRAME_BYTES}")]
    TooLarge(usize),
    #[error("snapshot request failed: {0}")]
    Http(String),
    #[error("this build has no V4L2 support (build with --features v4l2)")]
    NoV4l2,
    #[error("camera: {0}")]
    V4l2(String),
}

/// A source of still frames.
#[async_trait]
pub trait FrameSource: Send + std::fmt::Debug {
    /// Takes one frame (encoded image bytes).
    async fn grab(&mut self) -> Result<Vec<u8>, CameraError>;
}
