//! The simulator binary as a host sees it: over TCP (a serial-to-LAN converter) and a pty,
//! driven by its control socket and by a script file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Sim {
    child: Child,
    endpoint: String,
    control: BufReader<TcpStream>,
    control_w: TcpStream,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_metcon-scale-sim"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start simulator");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let (mut endpoint, mut control) = (None, None);
    while endpoint.is_none() || control.is_none() {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).expect("read") > 0,
            "simulator exited"
        );
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("PTY" | "TCP"), Some(e)) => endpoint = Some(e.to_string()),
            (Some("CONTROL"), Some(c)) => control = Some(c.to_string()),
            _ => {}
        }
    }
    let c = TcpStream::connect(control.expect("control")).expect("connect control");
    Sim {
        child,
        endpoint: endpoint.expect("endpoint"),
        control_w: c.try_clone().expect("clone"),
        control: BufReader::new(c),
    }
}

impl Sim {
    fn cmd(&mut self, line: &str) -> String {
        writeln!(self.control_w, "{line}").expect("write");
        let mut a = String::new();
        self.control.read_line(&mut a).expect("read");
        a.trim().to_string()
    }
}

/// Sends `cmd` and reads until a CR LF-terminated line arrives (deadline 5 s).
fn ask(stream: &mut TcpStream, cmd: &[u8]) -> Vec<u8> {
    stream.write_all(cmd).expect("write");
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"\r\n") {
        assert!(
            Instant::now() < deadline,
            "no answer to {cmd:?}, got {got:?}"
        );
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    got
}

fn wait_stable(sim: &mut Sim) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sim.cmd("status").contains("stable=true") {
        assert!(Instant::now() < deadline, "scale never settled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mt_sics_over_tcp_with_faults() {
    let mut sim = start(&[
        "--protocol",
        "mt-sics",
        "--tcp",
        "127.0.0.1:0",
        "--settle-ms",
        "100",
    ]);
    let mut host = TcpStream::connect(&sim.endpoint).expect("connect scale");
    assert_eq!(sim.cmd("set 148.30"), "ok");
    wait_stable(&mut sim);
    assert_eq!(ask(&mut host, b"SI\r\n"), b"S S     148.30 g\r\n");
    assert_eq!(ask(&mut host, b"I4\r\n"), b"I4 A \"B123456789\"\r\n");
    assert_eq!(ask(&mut host, b"HELLO\r\n"), b"ES\r\n");
    assert_eq!(sim.cmd("overload"), "ok");
    assert_eq!(ask(&mut host, b"SI\r\n"), b"S +\r\n");
    assert_eq!(sim.cmd("normal"), "ok");
    // garbage arrives before the next answer
    assert_eq!(sim.cmd("garbage 5"), "ok");
    let answer = ask(&mut host, b"SI\r\n");
    assert!(
        answer.len() > 5 && answer[..5].iter().all(|b| *b >= 0x80),
        "{answer:?}"
    );
    // a scale set to another baud rate answers only noise
    assert_eq!(sim.cmd("baud 4800"), "ok");
    host.write_all(b"SI\r\n").expect("write");
    std::thread::sleep(Duration::from_millis(50));
    host.write_all(b"\r\n").expect("write");
    // the scale cannot understand the host either, so there is no answer at all; an
    // unsolicited print arrives as noise
    assert_eq!(sim.cmd("print"), "ok");
    let mut noise = [0u8; 64];
    host.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let n = host.read(&mut noise).expect("noise");
    assert!(
        n > 0 && noise[..n].iter().all(|b| *b >= 0x80),
        "{:?}",
        &noise[..n]
    );
    assert_eq!(sim.cmd("baud 9600"), "ok");
    // disconnect drops the converter connection and refuses new ones until reconnect
    assert_eq!(sim.cmd("disconnect"), "ok");
    let mut buf = [0u8; 8];
    host.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    assert!(
        matches!(host.read(&mut buf), Ok(0) | Err(_)),
        "connection closed"
    );
    assert_eq!(sim.cmd("reconnect"), "ok");
    let mut host = TcpStream::connect(&sim.endpoint).expect("reconnect");
    assert_eq!(ask(&mut host, b"SI\r\n"), b"S S     148.30 g\r\n");
    assert!(sim.cmd("explode").starts_with("err"));
}

#[test]
fn script_drives_the_scale() {
    let dir = std::env::temp_dir().join(format!("metcon-sim-script-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let script = dir.join("load.script");
    std::fs::write(
        &script,
        "# put a bar on the pan\nsettle 50ms\nset 1000.5\nwait 100ms\ntare\n",
    )
    .expect("script");
    let mut sim = start(&[
        "--protocol",
        "a-and-d",
        "--tcp",
        "127.0.0.1:0",
        "--decimals",
        "1",
        "--capacity",
        "5000",
        "--script",
        script.to_str().expect("utf-8 path"),
    ]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sim.cmd("status").contains("tare=1000.5") {
        assert!(
            Instant::now() < deadline,
            "script did not run: {}",
            sim.cmd("status")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut host = TcpStream::connect(&sim.endpoint).expect("connect");
    assert_eq!(ask(&mut host, b"Q\r\n"), b"ST,+000000.0  g\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_script_is_refused_with_its_line() {
    let dir = std::env::temp_dir().join(format!("metcon-sim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let script = dir.join("bad.script");
    std::fs::write(&script, "set 1\nsettle soon\n").expect("script");
    let out = Command::new(env!("CARGO_BIN_EXE_metcon-scale-sim"))
        .args(["--protocol", "ohaus", "--tcp", "127.0.0.1:0", "--script"])
        .arg(&script)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.script:2"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
