//! `metcon-edge` as an installer uses it: `enroll` against the cloud, then `run`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::sibling_binary;

#[derive(Debug)]
pub struct Edge {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Edge {
    /// Runs `metcon-edge enroll --server … --code …` into a fresh folder.
    pub fn enroll(server: &str, code: &str) -> Edge {
        Edge::enroll_with(&["--server", server, "--code", code])
    }

    /// Runs `metcon-edge enroll --uri …` with what an enrollment QR code holds.
    pub fn enroll_uri(uri: &str) -> Edge {
        Edge::enroll_with(&["--uri", uri])
    }

    fn enroll_with(args: &[&str]) -> Edge {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("edge.toml");
        let out = Command::new(sibling_binary("metcon-edge").expect("metcon-edge is built"))
            .arg("enroll")
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .expect("run metcon-edge enroll");
        assert!(
            out.status.success(),
            "enroll failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Edge {
            dir,
            config,
            child: None,
            starts: 0,
        }
    }

    /// Appends TOML to the written configuration (e.g. a faster poll for tests).
    pub fn amend(&self, find: &str, replace: &str) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        assert!(
            text.contains(find),
            "{find:?} not in the enrolled config:\n{text}"
        );
        std::fs::write(&self.config, text.replacen(find, replace, 1)).expect("write config");
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "agent already running");
        self.starts += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("agent-{}.log", self.starts)))
            .expect("agent log");
        let child = Command::new(sibling_binary("metcon-edge").expect("metcon-edge is built"))
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

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn logs(&self) -> String {
        (1..=self.starts)
            .filter_map(|i| {
                std::fs::read_to_string(self.dir.path().join(format!("agent-{i}.log"))).ok()
            })
            .collect::<Vec<_>>()
            .join("\n---\n")
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop();
    }
}
