//! Which connections are let in: `max.connections`, `max.connections.per.ip`, and the process's
//! file-descriptor limit.
//!
//! A connection over a limit is closed as soon as it is accepted, so the client sees the refusal
//! at once instead of waiting in the listen backlog. When the process runs out of file
//! descriptors, `accept` fails and the pending connection would hang; a spare descriptor is
//! kept so that one can be freed to accept and close it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("{0} connections are open (max.connections)")]
    TooMany(usize),
    #[error("{count} connections from {ip} are open (max.connections.per.ip)")]
    TooManyFromIp { ip: IpAddr, count: usize },
}

/// Counts open connections against the limits.
pub(crate) struct Admission {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
    /// Refusals are logged at most once per [`WARN_EVERY`], so a flood does not flood the log.
    last_warning: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

const WARN_EVERY: Duration = Duration::from_secs(10);

/// An admitted connection; it leaves the counts when dropped.
pub(crate) struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
            last_warning: Mutex::new(None),
        })
    }

    /// Counts a new connection from `ip`, unless that would pass a limit.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refused> {
        let mut counts = self.counts.lock();
        if counts.total >= self.max_total {
            return Err(Refused::TooMany(counts.total));
        }
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(Refused::TooManyFromIp { ip, count: from_ip });
        }
        counts.total += 1;
        counts.per_ip.insert(ip, from_ip + 1);
        Ok(Admitted {
            admission: self.clone(),
            ip,
        })
    }

    /// Logs a refusal, rate-limited.
    pub(crate) fn warn_refused(&self, why: &dyn std::fmt::Display) {
        let mut last = self.last_warning.lock();
        let now = Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
            *last = Some(now);
            tracing::warn!(reason = %why, "refusing new connections");
        } else {
            tracing::debug!(reason = %why, "refused a connection");
        }
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.counts.lock().total
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.admission.counts.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Raises the soft limit on open files to the hard limit, so partitions and connections can
/// use what the administrator allows. Returns the soft limit now in force.
pub(crate) fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "could not raise the open-file limit");
            return getrlimit(Resource::Nofile).current;
        }
    }
    limit.current
}

/// True for the errors `accept` gives when the process or system is out of descriptors.
pub(crate) fn is_out_of_fds(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
    )
}

/// One descriptor held back so that, when `accept` fails for lack of descriptors, it can be
/// freed to accept the waiting connection and close it at once.
pub(crate) struct SpareFd(Option<std::fs::File>);

impl SpareFd {
    pub(crate) fn reserve() -> Self {
        Self(std::fs::File::open("/dev/null").ok())
    }

    /// Frees the spare descriptor, accepts the waiting connection into it and closes it, then
    /// takes the spare back. False if the spare could not be taken back (descriptors are
    /// still short): the caller should back off before accepting again.
    pub(crate) async fn refuse_one(&mut self, listener: &tokio::net::TcpListener) -> bool {
        self.0 = None;
        if let Ok(Ok((stream, _))) =
            tokio::time::timeout(Duration::from_millis(10), listener.accept()).await
        {
            drop(stream);
        }
        self.0 = std::fs::File::open("/dev/null").ok();
        self.0.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_total_and_per_ip_and_frees_on_drop() {
        let a = Admission::new(3, 2);
        let one: IpAddr = [127, 0, 0, 1].into();
        let two: IpAddr = [127, 0, 0, 2].into();
        let first = a.admit(one).unwrap();
        let _second = a.admit(one).unwrap();
        assert_eq!(
            a.admit(one).err(),
            Some(Refused::TooManyFromIp { ip: one, count: 2 })
        );
        let _third = a.admit(two).unwrap();
        assert_eq!(a.admit(two).err(), Some(Refused::TooMany(3)));
        drop(first);
        assert_eq!(a.open(), 2);
        let _again = a.admit(one).unwrap();
        assert_eq!(a.open(), 3);
    }
}
