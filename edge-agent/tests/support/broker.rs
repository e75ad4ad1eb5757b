//! A real Mosquitto for the tests: plain and TLS listeners on free loopback ports, with
//! persistence so that a stop/restart keeps sessions and queued messages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, port_open, wait_for};

/// A Mosquitto broker on a free loopback port, with persistence in a temp dir so that
/// stopping and restarting it (SIGTERM) keeps sessions and queued messages.
pub struct Broker {
    pub port: u16,
    /// The TLS listener's port, when started with [`Broker::start_tls`].
    pub tls_port: Option<u16>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl not found: install it with `apt-get install -y openssl`");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mosquitto_path() -> PathBuf {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "mosquitto not found: these end-to-end tests need a real broker. \
         Install it with `apt-get install -y mosquitto`."
    );
}

impl Broker {
    pub fn start() -> Broker {
        let mut b = Broker::stopped();
        b.resume();
        b
    }

    /// A broker with a plain listener (for the test subscriber) and a TLS listener whose
    /// server certificate (localhost, 127.0.0.1) is signed by a fresh test CA; the CA's
    /// certificate is at [`Broker::ca_file`].
    pub fn start_tls() -> Broker {
        let mut b = Broker::stopped();
        let d = b.dir.path().to_path_buf();
        openssl(
            &d,
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
        openssl(
            &d,
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
        std::fs::write(d.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
            .expect("write extensions");
        openssl(
            &d,
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
        {
            use std::os::unix::fs::PermissionsExt;
            // mosquitto (dropped to its own user) must read its key
            std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o644))
                .expect("chmod key");
        }
        let tls_port = free_port();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("mosquitto.conf"))
            .expect("open config");
        write!(
            conf,
            "listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n",
            d = d.display()
        )
        .expect("write config");
        b.tls_port = Some(tls_port);
        b.resume();
        wait_for(Duration::from_secs(10), "the TLS listener", || {
            port_open(tls_port).then_some(())
        });
        b
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A broker with its port and config chosen but not running yet.
    pub fn stopped() -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        // mosquitto started as root drops to its own user, which must be able to write here
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                .expect("chmod broker dir");
        }
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\nmax_queued_messages 0\nmax_inflight_messages 0\n",
                dir.path().display()
            ),
        )
        .expect("write broker config");
        Broker {
            port,
            tls_port: None,
            dir,
            child: None,
        }
    }

    /// (Re)starts the broker process on the same port.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .expect("broker log");
        let child = Command::new(mosquitto_path())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(10), "mosquitto to listen", || {
            port_open(port).then_some(())
        });
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker gracefully (it saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
