//! Frames from an image file, or from a folder of images taken in name order, round robin.
//! For installations without a camera and for tests.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{CameraError, FrameSource, MAX_FRAME_BYTES};

#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    next: usize,
}

impl FileSource {
    pub fn new(path: &Path) -> FileSource {
        FileSource {
            path: path.to_path_buf(),
            next: 0,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CameraError + '_ {
    move |source| CameraError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn grab_blocking(path: &Path, next: usize) -> Result<(Vec<u8>, usize), CameraError> {
    let file = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io(path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")
                })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(CameraError::Empty(path.display().to_string()));
        }
        let i = next % files.len();
        (files.swap_remove(i), i + 1)
    } else {
        (path.to_path_buf(), 0)
    };
    let len = std::fs::metadata(&file.0).map_err(io(&file.0))?.len() as usize;
    if len > MAX_FRAME_BYTES {
        return Err(CameraError::TooLarge(len));
    }
    let bytes = std::fs::read(&file.0).map_err(io(&file.0))?;
    Ok((bytes, file.1))
}

#[async_trait]
impl FrameSource for FileSource {
    async fn grab(&mut self) -> Result<Vec<u8>, CameraError> {
        let path = self.path.clone();
        let next = self.next;
        let (bytes, next) = tokio::task::spawn_blocking(move || grab_blocking(&path, next))
            .await
            .map_err(|e| CameraError::Io {
                path: self.path.display().to_string(),
                source: std::io::Error::other(e),
            })??;
        self.next = next;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn folder_round_robin_and_empty_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut src = FileSource::new(dir.path());
        assert!(matches!(src.grab().await, Err(CameraError::Empty(_))));
        std::fs::write(dir.path().join("a.jpg"), b"A").expect("write");
        std::fs::write(dir.path().join("b.png"), b"B").expect("write");
        std::fs::write(dir.path().join("notes.txt"), b"x").expect("write");
        let got: Vec<Vec<u8>> = vec![
            src.grab().await.expect("a"),
            src.grab().await.expect("b"),
            src.grab().await.expect("a again"),
        ];
        assert_eq!(got, vec![b"A".to_vec(), b"B".to_vec(), b"A".to_vec()]);
    }
}
