//! Helpers shared by the tests that run the `brook` binary: a free port, and starting the
//! process and waiting for its startup line.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) const BROOK: &str = env!("CARGO_BIN_EXE_brook");

/// A loopback port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A started `brook`, its log lines, its startup line and how long it took to print it.
pub(crate) struct Started {
    pub(crate) child: Child,
    /// Log lines after the startup line.
    pub(crate) log: mpsc::Receiver<String>,
    /// Log lines before it (such as the summary of the partitions opened).
    pub(crate) earlier: Vec<String>,
    pub(crate) startup_line: String,
    pub(crate) took: Duration,
}

/// Spawns `command` (a `brook` command line) with its log piped, and waits up to `timeout`
/// for the line that says it listens. Every log line is also sent to `Started::log`.
pub(crate) fn start_until_listening(mut command: Command, timeout: Duration) -> Started {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + timeout;
    let mut earlier = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("brook printed no startup line within {timeout:?}");
        };
        if line.contains("listening on") {
            return Started {
                child,
                log: rx,
                earlier,
                startup_line: line,
                took: started.elapsed(),
            };
        }
        earlier.push(line);
    }
}

/// Starts `brook` on `port` with `<dir>/data` as its data directory and a config file
/// checkpointing every `checkpoint_ms`, waiting up to `timeout` for its startup line.
pub(crate) fn start_with_checkpoints(
    dir: &std::path::Path,
    port: u16,
    checkpoint_ms: u64,
    timeout: Duration,
) -> Started {
    let toml = format!("\"log.flush.offset.checkpoint.interval.ms\" = {checkpoint_ms}\n");
    start_with_config(dir, port, &toml, timeout)
}

/// Starts `brook` on `port` with `<dir>/data` as its data directory and `toml` as its config
/// file, waiting up to `timeout` for its startup line.
pub(crate) fn start_with_config(
    dir: &std::path::Path,
    port: u16,
    toml: &str,
    timeout: Duration,
) -> Started {
    let config = dir.join("brook.toml");
    std::fs::write(&config, toml).unwrap();
    let mut cmd = Command::new(BROOK);
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--http-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(dir.join("data"))
    .arg("--config")
    .arg(&config);
    start_until_listening(cmd, timeout)
}
