//! End-to-end helpers: start the real binaries (`metcon-cloud`, `metcon-edge`,
//! `metcon-scale-sim`) and the real servers they use (Mosquitto, a MongoDB for tests and
//! benchmarks: [`mongo`], an S3 server: [`s3`]), each on free ports with temporary folders, and talk to them as
//! users and devices do.

pub mod api;
pub mod browser;
pub mod edge;
pub mod fleet;
pub mod mosquitto;
pub mod poll;
pub mod s3;
pub mod scale_sim;
pub mod scenes;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub mod mongo;

/// A running `metcon-cloud`, killed on drop.
#[derive(Debug)]
pub struct Server {
    pub base: String,
    pub setup_token: Option<String>,
    /// The embedded broker's device gate (`host:port`), when it runs one.
    pub broker: Option<String>,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary next to the running executable (`target/<profile>/metcon-cloud`), or in
/// `METCON_TEST_BIN_DIR` when set (e.g. binaries copied aside from a target folder that another
/// checkout also builds into).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("METCON_TEST_BIN_DIR") {
        return Ok(PathBuf::from(dir).join(name));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("executable has no folder")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found; build it first (cargo build -p metcon-cloud)",
            path.display()
        );
    }
    Ok(path)
}

impl Server {
    /// Process id of the server, e.g. to sample its memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL) and waits for it to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts `bin serve` on a free loopback port with `data_dir`.
    pub fn start(bin: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Result<Server> {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .env("METCON_LISTEN", "127.0.0.1:0")
            .env("METCON_BROKER__LISTEN", "127.0.0.1:0")
            .env("METCON_DATA_DIR", data_dir)
            .env("METCON_COOKIE_SECURE", "false")
            .env("METCON_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("while starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut setup_token = None;
        let mut broker = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .context("metcon-cloud did not start listening within 60 s")?;
            if let Some(t) = line.trim().strip_prefix("SETUP TOKEN: ") {
                setup_token = Some(t.to_string());
            }
            if let Some(addr) = line
                .strip_prefix("METCON broker listening on mqtt://")
                .or_else(|| line.strip_prefix("METCON broker listening on mqtts://"))
            {
                broker = Some(addr.trim().to_string());
            }
            if let Some(addr) = line.strip_prefix("METCON listening on ") {
                return Ok(Server {
                    base: addr.trim().to_string(),
                    setup_token,
                    broker,
                    child,
                });
            }
        }
    }
}
