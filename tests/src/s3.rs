//! A private `s3s-fs` (a real S3-compatible server that checks SigV4 signatures) on a free
//! port with a temporary folder, for the photo store's S3 tests. `scripts/test-all.sh`
//! installs it and names it in `METCON_TEST_S3S_FS`; with `METCON_TEST_REQUIRE_S3` set, a
//! missing one fails the test instead of skipping it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::poll::{free_port, port_open};

/// The credentials the server accepts.
pub const KEY: &str = "AKMETCONTEST";
pub const SECRET: &str = "SKMETCONTEST-0123456789";

/// A running `s3s-fs`, killed on drop.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:{port}`.
    pub endpoint: String,
    root: tempfile::TempDir,
}

impl S3Server {
    /// The folder it keeps buckets in (`{root}/{bucket}/{key}`), to check what was stored.
    pub fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    /// Starts one with the buckets `buckets`; `None` (the test is skipped) when
    /// `METCON_TEST_S3S_FS` does not name the server and it is not required.
    pub fn start(buckets: &[&str]) -> Option<S3Server> {
        let bin = match std::env::var("METCON_TEST_S3S_FS") {
            Ok(p) if !p.is_empty() => p,
            _ => {
                assert!(
                    std::env::var_os("METCON_TEST_REQUIRE_S3").is_none(),
                    "METCON_TEST_REQUIRE_S3 is set but METCON_TEST_S3S_FS does not name s3s-fs"
                );
                eprintln!("s3s-fs not configured (METCON_TEST_S3S_FS); S3 test skipped");
                return None;
            }
        };
        let root = tempfile::tempdir().expect("temporary folder");
        for b in buckets {
            std::fs::create_dir(root.path().join(b)).expect("bucket folder");
        }
        let port = free_port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", KEY, "--secret-key", SECRET])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        let s3 = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !port_open(port) {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {}",
                s3.endpoint
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(s3)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
