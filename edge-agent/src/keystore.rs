//! The device's Ed25519 key pair on disk.
//!
//! Generated on the device at first start and never sent anywhere: the private key (32-byte
//! seed, hex) lives in `device.key`, created with mode 0600 and refused later if anyone
//! but the owner can read it; the public key is written to `device.pub` (hex) for
//! enrollment. The key is never logged: [`DeviceKey`]'s `Debug` shows only the public half.
//!
//! Key rotation is crash-safe in three steps, all under the outbox lock so no reading can
//! take the rotation's sequence number in between: [`stage_rotation`] writes the new key as
//! `next.key` together with the sequence number its announcement will take; the agent appends
//! the announcement (signed with the old key) to the outbox; [`promote`] makes the new key the
//! device key. After a crash, [`recover_rotation`] promotes the staged key if the outbox has
//! handed out that sequence number (the announcement is durable, so the cloud will learn the
//! key) and discards it otherwise.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::rngs::OsRng;

pub const KEY_FILE: &str = "device.key";
pub const PUB_FILE: &str = "device.pub";
pub const NEXT_KEY_FILE: &str = "next.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} has mode {mode:o}; the private key must be readable by its owner only (chmod 600)"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{0} does not hold a 32-byte hex Ed25519 key")]
    Malformed(PathBuf),
}

/// The device's signing key. `Debug` prints the public key only.
pub struct DeviceKey {
    signing: SigningKey,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey(public {})", self.public_hex())
    }
}

impl DeviceKey {
    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    pub fn verifying(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.verifying().as_bytes())
    }
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> KeyStoreError + 'a {
    move |source| KeyStoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a hex public key file (`device.pub`), for `inspect`.
pub fn read_public(path: &Path) -> Result<VerifyingKey, KeyStoreError> {
    let text = fs::read_to_string(path).map_err(io("read", path))?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .map_err(|_| KeyStoreError::Malformed(path.to_path_buf()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyStoreError::Malformed(path.to_path_buf()))
}

/// Loads the key from `dir`, generating it on first start.
pub fn load_or_create(dir: &Path) -> Result<DeviceKey, KeyStoreError> {
    fs::create_dir_all(dir).map_err(io("create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io("protect", dir))?;
    let path = dir.join(KEY_FILE);
    match fs::metadata(&path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyStoreError::Permissions { path, mode });
            }
            let text = fs::read_to_string(&path).map_err(io("read", &path))?;
            let key = DeviceKey {
                signing: parse_seed(&text, &path)?,
            };
            write_public(dir, &key)?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signing = SigningKey::generate(&mut OsRng);
            write_secret(dir, KEY_FILE, &hex::encode(signing.to_bytes()))?;
            let key = DeviceKey { signing };
            write_public(dir, &key)?;
            tracing::info!(public_key = %key.public_hex(), "generated the device key pair");
            Ok(key)
        }
        Err(e) => Err(io("inspect", &path)(e)),
    }
}

/// Writes `text` to `dir/name` with mode 0600: temp file, fsync, rename, directory fsync.
fn write_secret(dir: &Path, name: &str, text: &str) -> Result<(), KeyStoreError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), KeyStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

fn parse_seed(text: &str, path: &Path) -> Result<SigningKey, KeyStoreError> {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .map_err(|_| KeyStoreError::Malformed(path.to_path_buf()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Step 1 of a rotation: a fresh key, stored as pending for the announcement at `seq`.
pub fn stage_rotation(dir: &Path, seq: u64) -> Result<DeviceKey, KeyStoreError> {
    let signing = SigningKey::generate(&mut OsRng);
    write_secret(
        dir,
        NEXT_KEY_FILE,
        &format!("{seq} {}", hex::encode(signing.to_bytes())),
    )?;
    Ok(DeviceKey { signing })
}

/// Step 3 of a rotation: the staged key becomes the device key.
pub fn promote(dir: &Path) -> Result<DeviceKey, KeyStoreError> {
    let next = dir.join(NEXT_KEY_FILE);
    let text = fs::read_to_string(&next).map_err(io("read", &next))?;
    let (_, seed) = text
        .split_once(' ')
        .ok_or_else(|| KeyStoreError::Malformed(next.clone()))?;
    let signing = parse_seed(seed, &next)?;
    // The device key first (atomically), then the staged file: a crash in between leaves the
    // staged key, which recovery promotes again to the same result.
    write_secret(dir, KEY_FILE, &hex::encode(signing.to_bytes()))?;
    fs::remove_file(&next).map_err(io("remove", &next))?;
    sync_dir(dir)?;
    let key = DeviceKey { signing };
    write_public(dir, &key)?;
    tracing::info!(public_key = %key.public_hex(), "device key rotated");
    Ok(key)
}

/// Finishes or discards a rotation that a crash interrupted. `next_seq` is the outbox's next
/// sequence number. Returns whether a staged key was promoted.
pub fn recover_rotation(dir: &Path, next_seq: u64) -> Result<bool, KeyStoreError> {
    let next = dir.join(NEXT_KEY_FILE);
    let text = match fs::read_to_string(&next) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io("read", &next)(e)),
    };
    let seq: u64 = text
        .split_once(' ')
        .and_then(|(s, _)| s.parse().ok())
        .ok_or_else(|| KeyStoreError::Malformed(next.clone()))?;
    if next_seq > seq {
        promote(dir)?;
        Ok(true)
    } else {
        fs::remove_file(&next).map_err(io("remove", &next))?;
        sync_dir(dir)?;
        tracing::warn!(
            seq,
            "an interrupted key rotation was discarded; the old key stays"
        );
        Ok(false)
    }
}

fn write_public(dir: &Path, key: &DeviceKey) -> Result<(), KeyStoreError> {
    let path = dir.join(PUB_FILE);
    let want = key.public_hex();
    if fs::read_to_string(&path).is_ok_and(|s| s.trim() == want) {
        return Ok(());
    }
    fs::write(&path, format!("{want}\n")).map_err(io("write", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_private_and_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k1 = load_or_create(dir.path()).expect("create");
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let k2 = load_or_create(dir.path()).expect("load");
        assert_eq!(k1.public_hex(), k2.public_hex());
        assert_eq!(
            read_public(&dir.path().join(PUB_FILE)).expect("pub"),
            k1.verifying()
        );
        let seed_hex = hex::encode(k1.signing().to_bytes());
        assert!(
            !format!("{k1:?}").contains(&seed_hex),
            "Debug never shows the secret"
        );
    }

    #[test]
    fn readable_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        load_or_create(dir.path()).expect("create");
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            load_or_create(dir.path()),
            Err(KeyStoreError::Permissions { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&path, "zz").expect("write");
        assert!(matches!(
            load_or_create(dir.path()),
            Err(KeyStoreError::Malformed(_))
        ));
    }

    #[test]
    fn a_rotation_is_promoted_or_discarded_by_whether_its_seq_was_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = load_or_create(dir.path()).expect("create");
        let new = stage_rotation(dir.path(), 5).expect("stage");
        let mode = fs::metadata(dir.path().join(NEXT_KEY_FILE))
            .expect("staged")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // crash before the announcement took seq 5: the old key stays
        assert!(!recover_rotation(dir.path(), 5).expect("recover"));
        assert_eq!(
            load_or_create(dir.path()).expect("load").public_hex(),
            old.public_hex()
        );
        assert!(!dir.path().join(NEXT_KEY_FILE).exists());
        // crash after: the new key wins
        let new2 = stage_rotation(dir.path(), 5).expect("stage");
        assert_ne!(new.public_hex(), new2.public_hex());
        assert!(recover_rotation(dir.path(), 6).expect("recover"));
        let now = load_or_create(dir.path()).expect("load");
        assert_eq!(now.public_hex(), new2.public_hex());
        assert_eq!(
            read_public(&dir.path().join(PUB_FILE)).expect("pub"),
            new2.verifying()
        );
        assert!(!recover_rotation(dir.path(), 7).expect("nothing staged"));
    }
}
