//! A `metcon-edge run` process with its own data dir and configuration.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;

use super::wait_for;

/// A `metcon-edge run` process with its own data dir and config.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Agent {
    /// Writes a config (device `scale-01`) with `scale_toml` as the `[scale]` body and extra
    /// top-level sections in `extra`.
    pub fn new(broker_port: u16, scale_toml: &str, extra: &str) -> Agent {
        Agent::with_mqtt(
            &format!("host = \"127.0.0.1\"\nport = {broker_port}"),
            scale_toml,
            extra,
        )
    }

    /// Like [`Agent::new`] with the `[mqtt]` connection lines given.
    pub fn with_mqtt(mqtt: &str, scale_toml: &str, extra: &str) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("edge.toml");
        std::fs::write(
            &config,
            format!(
                "device_id = \"scale-01\"\ndata_dir = \"{}\"\n\n[scale]\n{scale_toml}\n\n[mqtt]\n{mqtt}\nkeepalive_s = 2\nlive_rate_hz = 5\n\n{extra}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write agent config");
        Agent {
            dir,
            config,
            child: None,
            starts: 0,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "agent already running");
        self.starts += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("agent-{}.log", self.starts)))
            .expect("agent log");
        let child = Command::new(env!("CARGO_BIN_EXE_metcon-edge"))
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start metcon-edge");
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGTERM, and wait for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs a `metcon-edge` subcommand against this agent's config; returns (success, stdout+stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_metcon-edge"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run metcon-edge");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn public_key(&self) -> VerifyingKey {
        let path = self.data_dir().join("keys/device.pub");
        wait_for(Duration::from_secs(10), "the device key", || {
            metcon_edge::keystore::read_public(&path).ok()
        })
    }

    /// Outbox files still waiting for the broker.
    pub fn outbox_depth(&self) -> usize {
        std::fs::read_dir(self.data_dir().join("outbox"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".cose"))
                    .count()
            })
            .unwrap_or(0)
    }

    pub fn logs(&self) -> String {
        let mut all = String::new();
        for i in 1..=self.starts {
            if let Ok(s) = std::fs::read_to_string(self.dir.path().join(format!("agent-{i}.log"))) {
                all.push_str(&format!("--- run {i} ---\n{s}"));
            }
        }
        all
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}
