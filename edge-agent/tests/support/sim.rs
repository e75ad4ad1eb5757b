//! The scale simulator binary on a pty, driven through its control socket.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{sibling_binary, wait_for};

/// The scale simulator on a pty, with its control socket.
pub struct Sim {
    /// The pty path, or `host:port` when started with `--tcp`.
    pub pty: String,
    control: BufReader<TcpStream>,
    writer: TcpStream,
    child: Child,
}

impl Sim {
    pub fn start(protocol: &str, extra: &[&str]) -> Sim {
        let mut child = Command::new(sibling_binary("metcon-scale-sim"))
            .args(["--protocol", protocol, "--settle-ms", "200"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start metcon-scale-sim");
        let mut out = BufReader::new(child.stdout.take().expect("sim stdout"));
        let (mut pty, mut control) = (None, None);
        while pty.is_none() || control.is_none() {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).expect("sim output") > 0,
                "simulator exited early"
            );
            // on TCP the "pty" is the scale's host:port
            if let Some(p) = line
                .strip_prefix("PTY ")
                .or_else(|| line.strip_prefix("TCP "))
            {
                pty = Some(p.trim().to_string());
            }
            if let Some(c) = line.strip_prefix("CONTROL ") {
                control = Some(c.trim().to_string());
            }
        }
        let stream =
            TcpStream::connect(control.expect("control address")).expect("control connect");
        Sim {
            pty: pty.expect("pty path"),
            writer: stream.try_clone().expect("clone"),
            control: BufReader::new(stream),
            child,
        }
    }

    /// Sends one control command and returns the answer (`ok …`).
    pub fn cmd(&mut self, line: &str) -> String {
        writeln!(self.writer, "{line}").expect("control write");
        let mut answer = String::new();
        self.control.read_line(&mut answer).expect("control read");
        assert!(
            answer.starts_with("ok"),
            "simulator refused {line:?}: {answer}"
        );
        answer.trim().to_string()
    }

    /// Puts `load` on the pan and waits until the simulated scale is stable.
    pub fn set_and_settle(&mut self, load: &str) {
        self.cmd(&format!("set {load}"));
        wait_for(Duration::from_secs(5), "the scale to settle", || {
            self.cmd("status").contains("stable=true").then_some(())
        });
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
