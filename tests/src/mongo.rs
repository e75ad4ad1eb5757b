//! A MongoDB for tests and benchmarks, the same way everywhere.
//!
//! [`MongoTarget::from_env`] gives a fresh, uniquely named database on:
//! 1. the server named by `METCON_TEST_MONGODB_URI` (a real `mongod` replica set, or anything
//!    speaking the wire protocol), dropped again when the target is dropped; or else
//! 2. a private SecantusDB daemon (`secantusd-rs`, a MongoDB wire-protocol server; GPL, so it
//!    runs as a separate process and is never linked in) started on a free loopback port with
//!    a temporary storage folder and stopped on drop. The binary is `METCON_SECANTUSD` or
//!    `secantusd-rs` on `PATH`; `scripts/test-all.sh` installs it. One daemon per target keeps
//!    tests isolated and parallel.
//!
//! Neither available: `None`, and callers skip their MongoDB half, unless
//! `METCON_TEST_REQUIRE_MONGODB=1` (CI), which turns that into a failure.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The environment variable naming an external MongoDB to test against.
pub const URI_VAR: &str = "METCON_TEST_MONGODB_URI";

/// A database for one test (or benchmark run).
#[derive(Debug)]
pub struct MongoTarget {
    /// Connection string naming the database.
    pub uri: String,
    pub database: String,
    /// Declare a standalone server able to run transactions (only for stand-ins started
    /// `--standalone`, via `METCON_MONGODB_STANDALONE_TRANSACTIONS` with an external URI);
    /// passed on as `METCON_MONGODB_STANDALONE_TRANSACTIONS`.
    pub standalone_transactions: bool,
    daemon: Option<Daemon>,
}

#[derive(Debug)]
struct Daemon {
    child: Child,
    _storage: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(30)
        .collect();
    format!(
        "mt_{tag}_{}_{}_{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `uri` with its database path replaced by `db` (options kept).
pub fn with_database(uri: &str, db: &str) -> String {
    let (base, query) = match uri.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (uri, None),
    };
    let hosts_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[hosts_start..]
        .find('/')
        .map(|i| hosts_start + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The stand-in daemon's binary, if there is one.
pub fn secantusd() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("METCON_SECANTUSD") {
        let p = PathBuf::from(p);
        return p.exists().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("secantusd-rs"))
            .find(|p| p.is_file())
    })
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn start_daemon(bin: &std::path::Path, extra: &[&str]) -> Result<(Daemon, u16)> {
    let mut last = None;
    // A port picked free can be taken before the daemon binds it: try a few.
    for _ in 0..5 {
        let storage = tempfile::tempdir()?;
        let port = free_port()?;
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--storage-path")
            .arg(storage.path())
            .args(["--cache-size", "256M"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("while starting {}", bin.display()))?;
        let mut daemon = Daemon {
            child,
            _storage: storage,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok((daemon, port));
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                last = Some(format!("{} exited with {status}", bin.display()));
                break;
            }
            if Instant::now() > deadline {
                last = Some(format!(
                    "{} did not listen on {port} within 30 s",
                    bin.display()
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    bail!(last.unwrap_or_else(|| "the stand-in did not start".into()))
}

impl MongoTarget {
    /// A fresh database (see the module docs); `tag` goes into its name.
    pub fn from_env(tag: &str) -> Result<Option<MongoTarget>> {
        if let Ok(uri) = std::env::var(URI_VAR) {
            if !uri.trim().is_empty() {
                let database = unique_name(tag);
                return Ok(Some(MongoTarget {
                    uri: with_database(uri.trim(), &database),
                    database,
                    standalone_transactions: std::env::var(
                        "METCON_MONGODB_STANDALONE_TRANSACTIONS",
                    )
                    .is_ok_and(|v| v == "true" || v == "1"),
                    daemon: None,
                }));
            }
        }
        if secantusd().is_none() {
            if std::env::var("METCON_TEST_REQUIRE_MONGODB").is_ok_and(|v| v == "1") {
                bail!("METCON_TEST_REQUIRE_MONGODB=1 but neither {URI_VAR} nor a secantusd-rs binary (METCON_SECANTUSD or PATH) is available");
            }
            return Ok(None);
        }
        MongoTarget::private(tag, &[])
    }

    /// A private stand-in daemon started with `extra` arguments (e.g. `--standalone`), if the
    /// binary is there. It advertises a one-member replica set unless told `--standalone`.
    pub fn private(tag: &str, extra: &[&str]) -> Result<Option<MongoTarget>> {
        let Some(bin) = secantusd() else {
            return Ok(None);
        };
        let database = unique_name(tag);
        let (daemon, port) = start_daemon(&bin, extra)?;
        Ok(Some(MongoTarget {
            uri: format!("mongodb://127.0.0.1:{port}/{database}"),
            database,
            standalone_transactions: false,
            daemon: Some(daemon),
        }))
    }

    /// Environment for a `metcon-cloud` process using this database.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("METCON_DATABASE", self.uri.clone()),
            (
                "METCON_MONGODB_STANDALONE_TRANSACTIONS",
                self.standalone_transactions.to_string(),
            ),
        ]
    }

    /// Whether this target runs its own daemon (dropped with it) or uses an external server.
    pub fn is_private(&self) -> bool {
        self.daemon.is_some()
    }
}

impl Drop for MongoTarget {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            return; // the daemon and its storage go with it
        }
        // An external server: drop the test's database, on a thread of its own (this may run
        // inside an async runtime, which cannot block).
        let (uri, db) = (self.uri.clone(), self.database.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let client = mongodb::Client::with_uri_str(&uri).await.ok()?;
                client.database(&db).drop().await.ok()
            })
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_goes_into_the_uri_path() {
        assert_eq!(
            with_database("mongodb://127.0.0.1:27017/", "x"),
            "mongodb://127.0.0.1:27017/x"
        );
        assert_eq!(
            with_database("mongodb://127.0.0.1:27017", "x"),
            "mongodb://127.0.0.1:27017/x"
        );
        assert_eq!(
            with_database(
                "mongodb://u:p@a,b/admin?replicaSet=rs0&authSource=admin",
                "x"
            ),
            "mongodb://u:p@a,b/x?replicaSet=rs0&authSource=admin"
        );
        assert_eq!(
            with_database("mongodb+srv://c.example/?w=majority", "x"),
            "mongodb+srv://c.example/x?w=majority"
        );
        assert!(unique_name("a.b/c") != unique_name("a.b/c"));
        assert!(unique_name("users_crud").len() < 64);
    }
}
