//! A broker in a process of its own (the `brook-test-broker` binary of this crate), for tests
//! that look at it from outside: resident memory and open files from /proc, or a SIGKILL.

use std::io::Write;

/// A broker in its own process (`brook-test-broker`), so that its memory and file descriptors
/// can be read from /proc. Killed when dropped.
pub(crate) struct BrokerProcess {
    child: std::process::Child,
    bootstrap: String,
    http: Option<String>,
    _config: tempfile::NamedTempFile,
}

impl BrokerProcess {
    /// Starts a broker with `toml` as its config file (add `listen = "127.0.0.1:0"` and either
    /// `ephemeral = true` or a `data_dir`).
    pub(crate) fn start(toml: &str) -> Self {
        Self::spawn(toml, None)
    }

    /// The same with the process's open-file limit (soft and hard) set to `fds`, through
    /// util-linux's `prlimit`.
    pub(crate) fn start_with_fd_limit(toml: &str, fds: u64) -> Self {
        Self::spawn(toml, Some(fds))
    }

    fn spawn(toml: &str, fd_limit: Option<u64>) -> Self {
        use std::io::BufRead;
        let mut config = tempfile::NamedTempFile::new().expect("temp config file");
        config.write_all(toml.as_bytes()).expect("config written");
        if !toml.contains("http_listen") {
            // Tests run side by side: none may take the default HTTP port.
            config
                .write_all(b"\nhttp_listen = \"127.0.0.1:0\"\n")
                .expect("config written");
        }
        let exe = env!("CARGO_BIN_EXE_brook-test-broker");
        let mut command = match fd_limit {
            Some(n) => {
                let mut c = std::process::Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(exe);
                c
            }
            None => std::process::Command::new(exe),
        };
        let mut child = command
            .arg(config.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("brook-test-broker starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("bootstrap line");
        assert!(!line.trim().is_empty(), "the broker process did not start");
        let mut fields = line.split_whitespace().map(str::to_string);
        Self {
            child,
            bootstrap: fields.next().unwrap_or_default(),
            http: fields.next(),
            _config: config,
        }
    }

    pub(crate) fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The HTTP listener's address.
    pub(crate) fn http(&self) -> &str {
        self.http
            .as_deref()
            .expect("the broker has an HTTP listener")
    }

    /// Kills the process (SIGKILL) and waits for it to be gone.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The most resident memory so far, in bytes (VmHWM).
    pub(crate) fn peak_rss(&self) -> u64 {
        self.status_bytes("VmHWM:")
    }

    /// Open file descriptors.
    pub(crate) fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc fd")
            .count()
    }

    fn status_bytes(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .expect("a /proc status field")
            * 1024
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
