//! The line between the simulated scale and the host: a pseudo-terminal or TCP.
//!
//! On a pty the simulator keeps the slave side open (so the host can open, close and reopen
//! it like a serial port), puts it in raw mode (no echo, no CR/LF translation) and talks on
//! the non-blocking master side. On TCP it behaves like a serial-to-LAN converter: one host
//! connection at a time, a new one replaces the old. A "wrong baud rate" is modelled against
//! the line rate given at start (what the host or the converter is set to; a pty has no real
//! rate): when the scale's own rate differs, the host receives only noise.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

use crate::sim::{LinkOut, Sim};

/// Locks the simulator; a panicked holder leaves the state usable, so poison is ignored.
pub fn lock(sim: &Mutex<Sim>) -> std::sync::MutexGuard<'_, Sim> {
    sim.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug)]
struct PtyOut {
    master: Arc<File>,
    line_baud: u32,
}

impl LinkOut for PtyOut {
    fn send(&mut self, bytes: &[u8]) {
        // Non-blocking: when the host does not read, bytes are lost as on a real line.
        let _ = (&*self.master).write(bytes);
    }
    fn host_baud(&self) -> Option<u32> {
        Some(self.line_baud)
    }
}

/// Opens a pty, wires it to `sim`, and returns the slave path for the host to open.
pub fn serve_pty(sim: Arc<Mutex<Sim>>, line_baud: u32) -> anyhow::Result<(PathBuf, OwnedFd)> {
    let pty = nix::pty::openpty(None, None).context("while opening a pseudo-terminal")?;
    let mut t = tcgetattr(&pty.slave).context("while reading the pty's termios")?;
    cfmakeraw(&mut t);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &t).context("while making the pty raw")?;
    let path = nix::unistd::ttyname(pty.slave.as_fd()).context("while naming the pty")?;
    let flags =
        fcntl(pty.master.as_raw_fd(), FcntlArg::F_GETFL).context("while reading pty flags")?;
    fcntl(
        pty.master.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .context("while making the pty non-blocking")?;
    let master = Arc::new(File::from(pty.master));
    lock(&sim).out = Some(Box::new(PtyOut {
        master: master.clone(),
        line_baud,
    }));
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        loop {
            let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(200u16)).is_err() {
                thread::sleep(Duration::from_millis(50));
                continue;
            }
            match (&*master).read(&mut buf) {
                Ok(0) => thread::sleep(Duration::from_millis(50)),
                Ok(n) => lock(&sim).on_input(&buf[..n], Instant::now()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // EIO while no host has the slave open: wait for one
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    Ok((path, pty.slave))
}

#[derive(Debug)]
struct TcpOut {
    stream: TcpStream,
    id: u64,
    line_baud: u32,
}

impl LinkOut for TcpOut {
    fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }
    fn host_baud(&self) -> Option<u32> {
        // the converter's serial side runs at the configured line rate
        Some(self.line_baud)
    }
    fn drop_connection(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
    fn id(&self) -> u64 {
        self.id
    }
}

/// Serves the scale on a TCP listener, one host at a time.
pub fn serve_tcp(sim: Arc<Mutex<Sim>>, listener: TcpListener, line_baud: u32) {
    thread::spawn(move || {
        let mut next_id = 0u64;
        for conn in listener.incoming() {
            let Ok(stream) = conn else { continue };
            let mut guard = lock(&sim);
            if !guard.connected {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                continue;
            }
            next_id += 1;
            let id = next_id;
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = stream.set_nodelay(true);
            let Ok(writer) = stream.try_clone() else {
                continue;
            };
            if let Some(old) = guard.out.as_mut() {
                old.drop_connection();
            }
            guard.out = Some(Box::new(TcpOut {
                stream: writer,
                id,
                line_baud,
            }));
            drop(guard);
            let sim = sim.clone();
            thread::spawn(move || read_tcp(sim, stream, id));
        }
    });
}

fn read_tcp(sim: Arc<Mutex<Sim>>, mut stream: TcpStream, id: u64) {
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => lock(&sim).on_input(&buf[..n], Instant::now()),
        }
    }
    let mut guard = lock(&sim);
    let mine = guard.out.as_ref().is_some_and(|o| o.id() == id);
    if mine {
        guard.out = None;
    }
}
