//! The command-line tools against real things: `scales probe` on a simulated scale, and
//! `check` on configuration files, `enroll` refusing what is not an enrollment code.

mod support;

use std::process::Command;

use support::Sim;

fn edge(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_metcon-edge"))
        .args(args)
        .output()
        .expect("run metcon-edge");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn probe_names_the_protocol_of_each_scale() {
    for protocol in ["mt-sics", "sbi", "a-and-d", "ohaus", "toledo"] {
        let sim = Sim::start(protocol, &[]);
        let (ok, text) = edge(&["scales", "probe", &sim.pty, "--wait-ms", "500"]);
        assert!(ok, "{protocol}: {text}");
        assert!(text.starts_with(protocol), "{protocol}: {text}");
    }
}

#[test]
fn probe_explains_a_silent_print_line_scale() {
    let sim = Sim::start("print-line", &[]);
    let (ok, text) = edge(&["scales", "probe", &sim.pty, "--wait-ms", "200"]);
    assert!(!ok);
    assert!(text.contains("must be configured"), "{text}");
}

#[test]
fn check_lists_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "device_id = \"Scale 1\"\ndata_dir = \"/tmp/x\"\n[scale]\nprotocol = \"nope\"\n[mqtt]\nhost = \"\"\n",
    )
    .expect("write");
    let (ok, text) = edge(&["check", "--config", bad.to_str().expect("utf-8")]);
    assert!(!ok);
    for key in ["device_id", "scale.protocol", "exactly one of", "mqtt.host"] {
        assert!(text.contains(key), "{key} missing: {text}");
    }
    let (ok, text) = edge(&["check", "--config", "/nonexistent/edge.toml"]);
    assert!(!ok);
    assert!(text.contains("not found"), "{text}");
}

#[test]
fn enroll_explains_a_uri_that_is_not_an_enrollment_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    let config = config.to_str().expect("utf-8");
    for uri in [
        "https://metcon.example/enroll",
        "metcon-enroll:?url=http%3A%2F%2Fx",
    ] {
        let (ok, text) = edge(&["enroll", "--uri", uri, "--config", config]);
        assert!(!ok, "{uri}: {text}");
        assert!(text.contains("is not an enrollment URI"), "{uri}: {text}");
    }
    // The URI or the two arguments, not both; and not neither.
    let (ok, text) = edge(&[
        "enroll",
        "--uri",
        "metcon-enroll:?url=http%3A%2F%2Fx&code=K7QF",
        "--code",
        "K7QF",
        "--config",
        config,
    ]);
    assert!(!ok);
    assert!(text.contains("cannot be used with"), "{text}");
    let (ok, text) = edge(&["enroll", "--config", config]);
    assert!(!ok);
    assert!(text.contains("--server"), "{text}");
    assert!(!dir.path().join("edge.toml").exists(), "nothing written");
}
