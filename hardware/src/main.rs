//! `metcon-scale-sim`: a simulated scale that speaks real protocols on a pty or TCP.
//!
//! It prints where it listens (`PTY /dev/pts/N` or `TCP 127.0.0.1:P`, then
//! `CONTROL 127.0.0.1:P`) on stdout, one per line, so tests and people can connect. The
//! control socket and `--script` take the language described in [`control`].

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use metcon_shared::mass::MassUnit;

mod control;
mod link;
mod profile;
mod protocol;
mod sim;

use control::Command;
use link::lock;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Simulated scale speaking real protocols on a pty or TCP"
)]
struct Args {
    /// Protocol to speak.
    #[arg(long, value_enum)]
    protocol: protocol::Kind,
    /// Serve on a TCP address (serial-to-LAN converter) instead of a pseudo-terminal.
    #[arg(long)]
    tcp: Option<String>,
    /// Control socket address.
    #[arg(long, default_value = "127.0.0.1:0")]
    control: String,
    /// Display unit.
    #[arg(long, default_value = "g")]
    unit: MassUnit,
    /// Decimals shown (display resolution 10^-decimals).
    #[arg(long, default_value_t = 2)]
    decimals: u32,
    /// Capacity in display units.
    #[arg(long, default_value_t = 1000.0)]
    capacity: f64,
    /// Ticks per second (continuous output rate, SIR rate, autoprint granularity).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Line baud rate the host is set to; `baud N` on the control channel changes the
    /// scale's own rate, and a mismatch garbles the line.
    #[arg(long, default_value_t = 9600)]
    baud: u32,
    /// Settling time for load changes, in ms.
    #[arg(long, default_value_t = 300)]
    settle_ms: u64,
    /// Noise amplitude in display units.
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// Scale serial number.
    #[arg(long, default_value = "B123456789")]
    serial: String,
    /// SBI: 22-character output with identification code.
    #[arg(long)]
    sbi_long: bool,
    /// Random seed for noise and garbage.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Script file to run at start (control language plus `wait`).
    #[arg(long)]
    script: Option<PathBuf>,
}

fn run_command(sim: &Mutex<Sim>, line: &str) -> String {
    match Command::parse(line) {
        Ok(None) => "ok".into(),
        Ok(Some(Command::Wait(d))) => {
            thread::sleep(d);
            "ok".into()
        }
        Ok(Some(cmd)) => match lock(sim).apply(&cmd, Instant::now()) {
            Ok(s) if s.is_empty() => "ok".into(),
            Ok(s) => format!("ok {s}"),
            Err(e) => format!("err {e}"),
        },
        Err(e) => format!("err {e}"),
    }
}

fn serve_control_conn(sim: Arc<Mutex<Sim>>, stream: TcpStream) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let answer = run_command(&sim, &line);
        if writeln!(writer, "{answer}").is_err() {
            break;
        }
    }
}

use sim::Sim;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let now = Instant::now();
    let mut scale = profile::Scale::new(args.unit, args.decimals, args.capacity, args.seed, now);
    scale.settle = Duration::from_millis(args.settle_ms);
    scale.noise = args.noise;
    scale.serial = args.serial.clone();
    let sim = Arc::new(Mutex::new(Sim::new(
        scale,
        protocol::new(args.protocol, args.sbi_long),
        args.baud,
    )));

    let mut stdout = std::io::stdout();
    // The pty's slave fd is kept open for the life of the process.
    let _slave = match &args.tcp {
        Some(addr) => {
            let listener =
                TcpListener::bind(addr).with_context(|| format!("while binding {addr}"))?;
            writeln!(stdout, "TCP {}", listener.local_addr()?)?;
            link::serve_tcp(sim.clone(), listener, args.baud);
            None
        }
        None => {
            let (path, slave) = link::serve_pty(sim.clone(), args.baud)?;
            writeln!(stdout, "PTY {}", path.display())?;
            Some(slave)
        }
    };
    let control = TcpListener::bind(&args.control)
        .with_context(|| format!("while binding the control socket {}", args.control))?;
    writeln!(stdout, "CONTROL {}", control.local_addr()?)?;
    stdout.flush()?;
    {
        let sim = sim.clone();
        thread::spawn(move || {
            for conn in control.incoming().flatten() {
                let sim = sim.clone();
                thread::spawn(move || serve_control_conn(sim, conn));
            }
        });
    }
    if let Some(path) = &args.script {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("while reading script {}", path.display()))?;
        // Check the whole script before running any of it.
        for (n, line) in text.lines().enumerate() {
            Command::parse(line)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?;
        }
        let sim = sim.clone();
        thread::spawn(move || {
            for line in text.lines() {
                let answer = run_command(&sim, line);
                if answer.starts_with("err") {
                    eprintln!("script: {line}: {answer}");
                }
            }
        });
    }
    let period = Duration::from_secs_f64(1.0 / args.rate.clamp(0.1, 1000.0));
    let mut next = Instant::now();
    loop {
        next += period;
        lock(&sim).on_tick(Instant::now());
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}
