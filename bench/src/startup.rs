//! `startup`: spawn a broker command, time it to the first answered Kafka ApiVersions
//! request, read its idle RSS, kill it; repeat.
//!
//! The probe speaks raw Kafka (an ApiVersions v0 request is 14 bytes) so that the client's
//! own connection setup is not part of the figure. The command runs in its own process
//! group, and only that group is killed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::StartupOpts;
use crate::error::BenchError;
use crate::procfs;
use crate::report::{StartupReport, StartupRun};

/// ApiVersions' API key.
const API_VERSIONS: i16 = 18;
/// Largest response accepted from the probe.
const MAX_RESPONSE: usize = 1 << 20;

/// An ApiVersions v0 request: size 10, api key 18, version 0, `correlation_id`, null client
/// id (-1).
pub fn api_versions_v0(correlation_id: i32) -> [u8; 14] {
    let mut req = [0u8; 14];
    req[0..4].copy_from_slice(&10i32.to_be_bytes());
    req[4..6].copy_from_slice(&API_VERSIONS.to_be_bytes());
    req[6..8].copy_from_slice(&0i16.to_be_bytes());
    req[8..12].copy_from_slice(&correlation_id.to_be_bytes());
    req[12..14].copy_from_slice(&(-1i16).to_be_bytes());
    req
}

/// The body length announced by a response's 4-byte size prefix, if plausible for a
/// response that carries at least a correlation id.
pub fn response_len(size: [u8; 4]) -> Option<usize> {
    let n = usize::try_from(i32::from_be_bytes(size)).ok()?;
    (4..=MAX_RESPONSE).contains(&n).then_some(n)
}

/// Whether a response body answers `correlation_id`.
pub fn answers(body: &[u8], correlation_id: i32) -> bool {
    body.get(..4)
        .is_some_and(|id| id == correlation_id.to_be_bytes())
}

/// One connect + ApiVersions round trip.
fn probe(addr: SocketAddr, correlation_id: i32) -> std::io::Result<()> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(&api_versions_v0(correlation_id))?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let len = response_len(size).ok_or_else(|| invalid("bad response size"))?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    if answers(&body, correlation_id) {
        Ok(())
    } else {
        Err(invalid("correlation id mismatch"))
    }
}

/// `command` with `{port}` and `{dir}` filled in.
pub fn expand(command: &str, port: u16, dir: &Path) -> String {
    command
        .replace("{port}", &port.to_string())
        .replace("{dir}", &dir.to_string_lossy())
}

fn free_port(host: &str) -> Result<u16, BenchError> {
    TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| BenchError::io(format!("finding a free port on {host}"), e))
}

/// Kills the process group of `child` (it leads its own group) and reaps it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// A started broker command; killed with its process group when dropped.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        kill_group(&mut self.0);
    }
}

fn one_run(opts: &StartupOpts, run: u32) -> Result<StartupRun, BenchError> {
    let port = free_port(&opts.host)?;
    let addr = (opts.host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| BenchError::io(format!("resolving {}", opts.host), e))?
        .next()
        .ok_or_else(|| BenchError::Failed(format!("{} resolves to nothing", opts.host)))?;
    let data = tempfile::tempdir().map_err(|e| BenchError::io("creating a data directory", e))?;
    let logs = tempfile::tempdir().map_err(|e| BenchError::io("creating a log directory", e))?;
    let log_path = logs.path().join("broker.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| BenchError::io(format!("creating {}", log_path.display()), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| BenchError::io("duplicating the log file", e))?;
    let line = expand(&opts.command, port, data.path());
    let backoff = Duration::from_micros(opts.backoff_us);

    let started = Instant::now();
    let child = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| BenchError::io(format!("spawning `{line}`"), e))?;
    let mut broker = Started(child);
    let mut correlation_id = 0i32;
    let start_time = loop {
        correlation_id = correlation_id.wrapping_add(1);
        if probe(addr, correlation_id).is_ok() {
            break started.elapsed();
        }
        if started.elapsed() > opts.timeout {
            return Err(BenchError::Timeout(format!(
                "run {run}: `{line}` did not answer ApiVersions on {addr} within {:?}",
                opts.timeout
            )));
        }
        if let Ok(Some(status)) = broker.0.try_wait() {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: String = tail.lines().rev().take(10).collect::<Vec<_>>().join("\n");
            return Err(BenchError::Failed(format!(
                "run {run}: `{line}` exited ({status}) before answering; its last output:\n{tail}"
            )));
        }
        std::thread::sleep(backoff);
    };
    std::thread::sleep(opts.idle);
    let pid = procfs::deepest_descendant(broker.0.id());
    let rss_kib = procfs::rss_kib(pid)?;
    drop(broker);
    Ok(StartupRun {
        start_ms: start_time.as_secs_f64() * 1000.0,
        rss_kib,
    })
}

/// Starts the command `--runs` times and summarises.
pub fn run(opts: &StartupOpts) -> Result<StartupReport, BenchError> {
    let runs = (1..=opts.runs)
        .map(|run| one_run(opts, run))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StartupReport::new(opts.command.clone(), runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        assert_eq!(
            api_versions_v0(0x0102_0304),
            [0, 0, 0, 10, 0, 18, 0, 0, 1, 2, 3, 4, 0xff, 0xff]
        );
    }

    #[test]
    fn response_checks() {
        assert_eq!(response_len([0, 0, 0, 4]), Some(4));
        assert_eq!(response_len([0, 0, 1, 0]), Some(256));
        assert_eq!(response_len([0, 0, 0, 3]), None);
        assert_eq!(response_len([0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(response_len([0x7f, 0, 0, 0]), None);
        assert!(answers(&[0, 0, 0, 7, 0, 0], 7));
        assert!(!answers(&[0, 0, 0, 8, 0, 0], 7));
        assert!(!answers(&[0, 0], 7));
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            expand(
                "brook --listen 127.0.0.1:{port} --data-dir {dir}",
                9100,
                Path::new("/tmp/x")
            ),
            "brook --listen 127.0.0.1:9100 --data-dir /tmp/x"
        );
        assert_eq!(
            expand("no placeholders", 1, Path::new("/")),
            "no placeholders"
        );
    }

    /// A fake broker in a thread: answers one ApiVersions with the request's correlation id.
    #[test]
    fn probe_against_a_fake_broker() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 14];
            s.read_exact(&mut req).unwrap();
            assert_eq!(&req[..8], &api_versions_v0(0)[..8]);
            let mut resp = 6i32.to_be_bytes().to_vec();
            resp.extend_from_slice(&req[8..12]);
            resp.extend_from_slice(&[0, 0]);
            s.write_all(&resp).unwrap();
        });
        probe(addr, 42).unwrap();
        server.join().unwrap();
        // Nobody listens any more.
        assert!(probe(addr, 43).is_err());
    }

    /// A command that exits without answering is reported with its output, not waited on.
    #[test]
    fn a_command_that_exits_is_reported() {
        let opts = StartupOpts {
            command: "echo failing on {port}; exit 3".into(),
            host: "127.0.0.1".into(),
            runs: 1,
            idle: Duration::ZERO,
            timeout: Duration::from_secs(10),
            backoff_us: 200,
            json: false,
        };
        let err = run(&opts).unwrap_err().to_string();
        assert!(err.contains("exited"), "{err}");
        assert!(err.contains("failing on"), "{err}");
    }
}
