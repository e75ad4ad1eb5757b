//! A real Mosquitto started with the shipped `deploy/mosquitto/mosquitto.conf`: its paths and
//! port pointed at a temporary folder, a fresh test CA and server certificate, and the dynamic
//! security plugin initialised with the cloud's login as admin (`mosquitto_ctrl dynsec init`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::poll::{free_port, port_open, wait_for};

pub const CLOUD_USER: &str = "metcon-cloud";
pub const CLOUD_PASSWORD: &str = "cloud-broker-password-for-tests";

#[derive(Debug)]
pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn tool(name: &str, candidates: &[&str], package: &str) -> PathBuf {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{name} not found; install it with `apt-get install -y {package}`")
        })
}

fn run(dir: &Path, program: &Path, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `ca.pem`, `server.pem` and `server.key` (localhost, 127.0.0.1) into `dir`.
pub fn make_certificates(dir: &Path) {
    let openssl = tool("openssl", &["/usr/bin/openssl"], "openssl");
    run(
        dir,
        &openssl,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=metcon-test-ca",
        ],
    );
    run(
        dir,
        &openssl,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write extensions");
    run(
        dir,
        &openssl,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        {
            use std::os::unix::fs::PermissionsExt;
            // mosquitto started as root drops to its own user, which must write here
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        make_certificates(d);
        let ctrl = tool(
            "mosquitto_ctrl",
            &["/usr/bin/mosquitto_ctrl"],
            "mosquitto-clients",
        );
        run(
            d,
            &ctrl,
            &[
                "dynsec",
                "init",
                "dynamic-security.json",
                CLOUD_USER,
                CLOUD_PASSWORD,
            ],
        );
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["server.key", "dynamic-security.json"] {
                std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o666))
                    .expect("chmod");
            }
        }
        let shipped =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto/mosquitto.conf");
        let conf = std::fs::read_to_string(&shipped).expect("deploy/mosquitto/mosquitto.conf");
        let port = free_port();
        assert!(
            conf.contains("listener 8883\n"),
            "the shipped config listens on 8883"
        );
        let folder = format!("{}/", d.display());
        let conf = conf
            .replace("listener 8883\n", &format!("listener {port} 127.0.0.1\n"))
            .replace("/etc/mosquitto/metcon/", &folder)
            .replace("/var/lib/mosquitto/", &folder);
        std::fs::write(d.join("mosquitto.conf"), conf).expect("write config");
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
        };
        m.resume();
        m
    }

    pub fn resume(&mut self) {
        let bin = tool(
            "mosquitto",
            &["/usr/sbin/mosquitto", "/usr/bin/mosquitto"],
            "mosquitto",
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .expect("log");
        self.child = Some(
            Command::new(bin)
                .arg("-c")
                .arg(self.dir.path().join("mosquitto.conf"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start mosquitto"),
        );
        let port = self.port;
        wait_for(Duration::from_secs(10), "mosquitto to listen", || {
            port_open(port).then_some(())
        });
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// The cloud's `[broker]` configuration for this broker, as environment variables.
    pub fn cloud_env(&self) -> Vec<(String, String)> {
        vec![
            ("METCON_BROKER__MODE".into(), "external".into()),
            ("METCON_BROKER__HOST".into(), "127.0.0.1".into()),
            ("METCON_BROKER__PORT".into(), self.port.to_string()),
            (
                "METCON_BROKER__TLS_CA_FILE".into(),
                self.ca_file().display().to_string(),
            ),
            ("METCON_BROKER__USERNAME".into(), CLOUD_USER.into()),
            ("METCON_BROKER__PASSWORD".into(), CLOUD_PASSWORD.into()),
            ("METCON_BROKER__DEVICE_ACCESS".into(), "dynsec".into()),
        ]
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
