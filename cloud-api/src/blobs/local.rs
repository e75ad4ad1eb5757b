//! Blobs in a local folder: `{root}/{aa}/{bb}/{sha256}`, written to a temp file, fsynced and
//! renamed, so a blob is either whole or absent. Existing blobs are never rewritten.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{check_name, sha256_hex, BlobError, BlobStore};

#[derive(Debug, Clone)]
pub struct LocalFolder {
    root: PathBuf,
}

impl LocalFolder {
    pub fn new(root: impl Into<PathBuf>) -> LocalFolder {
        LocalFolder { root: root.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(&name[0..2]).join(&name[2..4]).join(name)
    }
}

fn backend(e: impl std::fmt::Display) -> BlobError {
    BlobError::Backend(e.to_string())
}

fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("blob"),
        uuid::Uuid::new_v4().simple()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl BlobStore for LocalFolder {
    async fn put(&self, sha256: &str, bytes: &[u8], _content_type: &str) -> Result<(), BlobError> {
        check_name(sha256)?;
        let path = self.path(sha256);
        let bytes = bytes.to_vec();
        let name = sha256.to_string();
        tokio::task::spawn_blocking(move || {
            if sha256_hex(&bytes) != name {
                return Err(BlobError::DigestMismatch(name));
            }
            if path.exists() {
                return Ok(());
            }
            write_durable(&path, &bytes).map_err(backend)
        })
        .await
        .map_err(backend)?
    }

    async fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, BlobError> {
        check_name(sha256)?;
        let path = self.path(sha256);
        tokio::task::spawn_blocking(move || match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(backend(e)),
        })
        .await
        .map_err(backend)?
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        check_name(sha256)?;
        let path = self.path(sha256);
        tokio::task::spawn_blocking(move || path.exists())
            .await
            .map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_are_stored_by_digest_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalFolder::new(dir.path());
        let bytes = b"\xff\xd8 a jpeg";
        let name = sha256_hex(bytes);
        assert!(!store.exists(&name).await.expect("exists"));
        store.put(&name, bytes, "image/jpeg").await.expect("put");
        store
            .put(&name, bytes, "image/jpeg")
            .await
            .expect("again is fine");
        assert_eq!(store.get(&name).await.expect("get"), Some(bytes.to_vec()));
        assert!(matches!(
            store.put(&name, b"other", "image/jpeg").await,
            Err(BlobError::DigestMismatch(_))
        ));
        assert!(matches!(
            store.get("../etc/passwd").await,
            Err(BlobError::BadName(_))
        ));
        assert_eq!(store.get(&sha256_hex(b"absent")).await.expect("get"), None);
    }
}
