//! A full disk: produce answers KAFKA_STORAGE_ERROR, nothing crashes, reads are still served,
//! and writes resume once space is freed. Runs on a small tmpfs, which needs root (CI here
//! runs as root); elsewhere it says why it skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::batch::testing::{build_batch, TestRecord};
use brook_protocol::ErrorCode;
use brook_tests::RawClient;

use crate::wire::{create, fetch, latest, produce};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system with 1 MiB files until it is full; returns them.
fn fill(dir: &Path) -> Vec<PathBuf> {
    let chunk = vec![0x5a; 1 << 20];
    let mut files = Vec::new();
    for i in 0.. {
        let path = dir.join(format!("ballast-{i}"));
        if std::fs::write(&path, &chunk).is_err() {
            let _ = std::fs::remove_file(&path);
            return files;
        }
        files.push(path);
    }
    files
}

#[test]
fn full_disk_fails_produce_cleanly_and_recovers() {
    let tmpfs = match Tmpfs::mount("48m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!(
                "SKIPPED full_disk_fails_produce_cleanly_and_recovers: needs a tmpfs ({why})"
            );
            return;
        }
    };
    let config = BrokerConfig {
        auto_create_topics_enable: false,
        ..BrokerConfig::with_data_dir(tmpfs.path().join("data"))
    };
    let broker = EmbeddedBroker::start(config).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    let small = [
        ("segment.bytes", "1048576"),
        ("segment.index.bytes", "65536"),
    ];
    assert_eq!(create(&mut c, "full", 1, &small), 0);

    // Leave about 4 MiB free.
    let mut ballast = fill(tmpfs.path());
    for _ in 0..4 {
        std::fs::remove_file(ballast.pop().unwrap()).unwrap();
    }

    let big = |i: usize| {
        build_batch(
            i as i64,
            &[TestRecord {
                value: Some(vec![b'a' + (i % 26) as u8; 200 * 1024]),
                ..Default::default()
            }],
        )
    };
    let mut appended = 0;
    let mut refused = None;
    for i in 0..200 {
        let (code, offset) = produce(&mut c, "full", 0, big(i));
        if code != 0 {
            refused = Some(code);
            break;
        }
        assert_eq!(offset, appended, "offsets stay contiguous");
        appended += 1;
    }
    assert_eq!(
        refused,
        Some(ErrorCode::KafkaStorageError.code()),
        "the disk never filled, or the error was not KAFKA_STORAGE_ERROR"
    );
    assert!(appended > 0);
    // Still refusing while full, still serving reads and metadata.
    assert_eq!(
        produce(&mut c, "full", 0, big(0)).0,
        ErrorCode::KafkaStorageError.code()
    );
    let (code, hw, records) = fetch(&mut c, "full", 0, 0, 0);
    assert_eq!((code, hw), (0, appended));
    assert!(!records.unwrap().is_empty());
    assert_eq!(latest(&mut c, "full", 0), appended);

    // Free the space: writes resume at the next offset.
    for f in ballast {
        std::fs::remove_file(f).unwrap();
    }
    assert_eq!(produce(&mut c, "full", 0, big(1)), (0, appended));
    broker.shutdown();
    drop(tmpfs);
}
