//! The `brook` binary as scripts use it: flags, the startup line, a Kafka request answered,
//! clean shutdown on SIGTERM and SIGINT, `--ephemeral`, and `--config` with flags winning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

mod common;

use common::{start_until_listening, BROOK};

/// A running `brook` process and the address its startup line announced.
struct Running {
    child: Child,
    addr: String,
    startup_line: String,
    /// The data directory named in the startup line.
    data_dir: String,
    log: mpsc::Receiver<String>,
}

fn start(args: &[&str], cwd: &Path) -> Running {
    let mut cmd = Command::new(BROOK);
    cmd.args(args).current_dir(cwd);
    // Tests run side by side: no two may take the default HTTP port.
    if !args.contains(&"--http-listen") {
        cmd.args(["--http-listen", "127.0.0.1:0"]);
    }
    let started = start_until_listening(cmd, Duration::from_secs(20));
    let line = &started.startup_line;
    let rest = line
        .split("listening on ")
        .nth(1)
        .expect("startup line names the address");
    let addr = rest.split(',').next().unwrap().trim().to_string();
    let data = line
        .split("data in ")
        .nth(1)
        .expect("startup line names the data dir");
    let data_dir = data.split([',', ' ']).next().unwrap().to_string();
    Running {
        child: started.child,
        addr,
        startup_line: line.clone(),
        data_dir,
        log: started.log,
    }
}

/// Sends ApiVersions v0 and returns its error code.
fn api_versions_error(addr: &str) -> i16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // size, api key 18, version 0, correlation id 7, null client id; empty body.
    let req = [
        &10i32.to_be_bytes()[..],
        &18i16.to_be_bytes(),
        &0i16.to_be_bytes(),
        &7i32.to_be_bytes(),
        &(-1i16).to_be_bytes(),
    ]
    .concat();
    s.write_all(&req).unwrap();
    let mut head = [0u8; 10];
    s.read_exact(&mut head).unwrap();
    assert_eq!(i32::from_be_bytes(head[4..8].try_into().unwrap()), 7);
    i16::from_be_bytes([head[8], head[9]])
}

fn stop(mut r: Running, signal: i32) -> Vec<String> {
    let pid = r.child.id() as i32;
    // kill(1) rather than libc::kill keeps this test free of unsafe code.
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = r.child.try_wait().unwrap() {
            assert!(status.success(), "brook exited with {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "brook did not stop on signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    r.log.try_iter().collect()
}

#[test]
fn help_names_every_flag() {
    let out = Command::new(BROOK).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--advertise",
        "--data-dir",
        "--ephemeral",
        "--config",
        "--http-listen",
        "--help",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}

/// A plain HTTP/1.1 GET; (status code, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn the_http_listener_serves_health_probes_or_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--ephemeral",
            "--http-listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let http = r
        .startup_line
        .split("HTTP http://")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the startup line names the HTTP address")
        .to_string();
    assert_eq!(
        http_get(&http, "/health/live"),
        (200, r#"{"status":"live"}"#.into())
    );
    assert_eq!(
        http_get(&http, "/health/ready"),
        (200, r#"{"status":"ready"}"#.into())
    );
    stop(r, 15);

    let r = start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--ephemeral",
            "--http-listen",
            "off",
        ],
        dir.path(),
    );
    assert!(r.startup_line.contains("HTTP off"), "{}", r.startup_line);
    stop(r, 15);

    let out = Command::new(BROOK)
        .args(["--ephemeral", "--http-listen", "8081"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http_listen"), "{err}");
}

#[test]
fn serves_and_stops_cleanly_keeping_its_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(
        &["--listen", "127.0.0.1:0", "--data-dir", "data"],
        dir.path(),
    );
    assert!(r.addr.starts_with("127.0.0.1:"), "{}", r.addr);
    assert_eq!(api_versions_error(&r.addr), 0);
    let log = stop(r, 15);
    assert!(log.iter().any(|l| l.contains("broker stopped")), "{log:?}");
    assert!(dir.path().join("data/brook-metadata.json").exists());

    // SIGINT works too, and the same directory is reused.
    let r = start(
        &["--listen", "127.0.0.1:0", "--data-dir", "data"],
        dir.path(),
    );
    assert_eq!(api_versions_error(&r.addr), 0);
    stop(r, 2);
}

#[test]
fn ephemeral_data_is_removed_on_exit() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(&["--listen", "127.0.0.1:0", "--ephemeral"], dir.path());
    assert_eq!(api_versions_error(&r.addr), 0);
    let data_dir = r.data_dir.clone();
    assert!(
        Path::new(&data_dir).join("brook-metadata.json").exists(),
        "{data_dir}"
    );
    stop(r, 15);
    assert!(
        !Path::new(&data_dir).exists(),
        "ephemeral directory {data_dir} left behind"
    );
    assert!(
        !dir.path().join("brook-data").exists(),
        "ephemeral broker wrote to ./brook-data"
    );
}

#[test]
fn config_file_is_read_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("brook.toml"),
        "listen = \"127.0.0.1:1\"\ndata_dir = \"from-file\"\n\"num.partitions\" = 2\n",
    )
    .unwrap();
    let r = start(
        &["--config", "brook.toml", "--listen", "127.0.0.1:0"],
        dir.path(),
    );
    assert_ne!(r.addr, "127.0.0.1:1", "--listen must override the file");
    assert_eq!(api_versions_error(&r.addr), 0);
    stop(r, 15);
    assert!(dir.path().join("from-file/brook-metadata.json").exists());

    std::fs::write(dir.path().join("bad.toml"), "no_such_setting = 1\n").unwrap();
    let out = Command::new(BROOK)
        .args(["--config", "bad.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_setting"));
}

/// Runs `brook ARGS` to completion: (success, stdout, stderr).
fn brook(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(BROOK)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A broker started from a config file: `brook tls init` makes the certificates in
/// `dir/tls` first, then `settings(tls dir, Kafka port)` is the file's TOML. The running
/// broker and the tls dir.
fn start_with_tls(
    dir: &Path,
    settings: impl FnOnce(&Path, u16) -> String,
    env: &[(&str, &str)],
) -> (Running, std::path::PathBuf) {
    let tls = dir.join("tls");
    let (ok, _, stderr) = brook(&["tls", "init", "--dir", tls.to_str().unwrap()], &[]);
    assert!(ok, "{stderr}");
    let port = common::free_port();
    let config = dir.join("brook.toml");
    std::fs::write(&config, settings(&tls, port)).unwrap();
    let mut cmd = Command::new(BROOK);
    cmd.args(["--config", config.to_str().unwrap()])
        .envs(env.iter().copied());
    let started = start_until_listening(cmd, Duration::from_secs(20));
    let running = Running {
        child: started.child,
        addr: format!("127.0.0.1:{port}"),
        startup_line: started.startup_line,
        data_dir: String::new(),
        log: started.log,
    };
    (running, tls)
}

#[test]
fn tls_init_writes_a_usable_ca_and_server_certificate_and_keeps_existing_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let tls_arg = tls.to_str().unwrap();
    let (ok, stdout, stderr) = brook(&["tls", "init", "--dir", tls_arg, "--client", "app-1"], &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ssl.keystore.location"), "{stdout}");
    let mode = |f: &str| std::fs::metadata(tls.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("ca.pem"), 0o644);
    for private in ["ca-key.pem", "server.pem", "client-app-1.pem"] {
        assert_eq!(mode(private), 0o600, "{private}");
    }
    // The files make a TLS listener's config with mutual TLS.
    let config = brook_broker::BrokerConfig {
        ssl_keystore_location: Some(tls.join("server.pem")),
        ssl_truststore_location: Some(tls.join("ca.pem")),
        ssl_client_auth: "required".into(),
        ..brook_broker::BrokerConfig::default()
    };
    brook_broker::auth::tls::Tls::load(&config).unwrap();
    // Existing files are kept unless --force.
    let before = std::fs::read(tls.join("server.pem")).unwrap();
    let (ok, _, stderr) = brook(&["tls", "init", "--dir", tls_arg], &[]);
    assert!(!ok && stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(tls.join("server.pem")).unwrap(), before);
    let (ok, _, stderr) = brook(&["tls", "init", "--dir", tls_arg, "--force"], &[]);
    assert!(ok, "{stderr}");
    assert_ne!(std::fs::read(tls.join("server.pem")).unwrap(), before);
}

#[test]
fn user_commands_manage_a_stopped_brokers_users_and_the_admin_user_comes_from_the_env() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let (ok, _, stderr) = brook(
        &[
            "user",
            "create",
            "--name",
            "alice",
            "--password",
            "pw",
            "--data-dir",
            data_arg,
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = brook(
        &[
            "user",
            "create",
            "--name",
            "bob",
            "--password",
            "pw",
            "--mechanism",
            "SCRAM-SHA-512",
            "--iterations",
            "8192",
            "--data-dir",
            data_arg,
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    let list = || {
        let (ok, stdout, stderr) = brook(
            &["user", "list", "--data-dir", data_arg, "--format", "json"],
            &[],
        );
        assert!(ok, "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    let users = list();
    assert_eq!(users[0]["user"], "alice");
    assert_eq!(users[0]["credentials"].as_array().unwrap().len(), 2);
    assert_eq!(users[1]["credentials"][0]["mechanism"], "SCRAM-SHA-512");
    assert_eq!(users[1]["credentials"][0]["iterations"], 8192);
    let (ok, _, stderr) = brook(
        &["user", "delete", "--name", "bob", "--data-dir", data_arg],
        &[],
    );
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = brook(
        &["user", "delete", "--name", "bob", "--data-dir", data_arg],
        &[],
    );
    assert!(!ok && stderr.contains("has no credentials"), "{stderr}");
    let (ok, _, stderr) = brook(
        &[
            "user",
            "create",
            "--name",
            "x",
            "--password",
            "pw",
            "--mechanism",
            "MD5",
            "--data-dir",
            data_arg,
        ],
        &[],
    );
    assert!(
        !ok && stderr.contains("SCRAM-SHA-256 or SCRAM-SHA-512"),
        "{stderr}"
    );

    // A running broker's directory is refused; its admin user comes from the environment.
    let mut cmd = Command::new(BROOK);
    cmd.args([
        "--data-dir",
        data_arg,
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "off",
    ])
    .env("BROOK_ADMIN_USER", "admin")
    .env("BROOK_ADMIN_PASSWORD", "admin-secret");
    let started = start_until_listening(cmd, Duration::from_secs(20));
    let (ok, _, stderr) = brook(
        &[
            "user",
            "create",
            "--name",
            "carol",
            "--password",
            "pw",
            "--data-dir",
            data_arg,
        ],
        &[],
    );
    assert!(
        !ok && stderr.contains("in use by another broker"),
        "{stderr}"
    );
    let running = Running {
        child: started.child,
        addr: String::new(),
        startup_line: started.startup_line,
        data_dir: data_arg.to_string(),
        log: started.log,
    };
    stop(running, 15);
    let names: Vec<String> = list()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["admin", "alice"]);
}

#[test]
fn user_and_acl_commands_work_against_a_running_broker_over_sasl_ssl() {
    let dir = tempfile::tempdir().unwrap();
    let (running, tls) = start_with_tls(
        dir.path(),
        |tls, port| {
            format!(
                "listeners = \"SASL_SSL://127.0.0.1:{port}\"\nhttp_listen = \"off\"\ndata_dir = {:?}\n\"ssl.keystore.location\" = {:?}\n\"authorizer.class.name\" = \"on\"\n",
                dir.path().join("data"),
                tls.join("server.pem"),
            )
        },
        &[
            ("BROOK_ADMIN_USER", "admin"),
            ("BROOK_ADMIN_PASSWORD", "admin-secret"),
        ],
    );
    let ca = tls.join("ca.pem");
    let as_user = |user: &'static str, password: &'static str| {
        vec![
            "--brokers".to_string(),
            running.addr.clone(),
            "--tls-ca".into(),
            ca.to_str().unwrap().to_string(),
            "--sasl-user".into(),
            user.into(),
            "--sasl-password".into(),
            password.into(),
        ]
    };
    let run = |args: &[&str], who: &[String]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(who.iter().map(String::as_str));
        brook(&all, &[])
    };
    let admin = as_user("admin", "admin-secret");
    let (ok, _, stderr) = run(
        &[
            "user",
            "create",
            "--name",
            "alice",
            "--password",
            "alice-secret",
        ],
        &admin,
    );
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(&["user", "list", "--format", "json"], &admin);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"user\":\"alice\""), "{stdout}");
    // alice exists but may do nothing yet; a wrong password is refused with Kafka's message.
    let alice = as_user("alice", "alice-secret");
    let (ok, _, stderr) = run(&["acl", "list"], &alice);
    assert!(
        !ok && stderr.contains("Cluster authorization failed"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(&["acl", "list"], &as_user("alice", "wrong"));
    assert!(!ok && stderr.contains("invalid credentials"), "{stderr}");
    let (ok, _, stderr) = run(
        &[
            "acl",
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "describe",
            "--cluster",
        ],
        &admin,
    );
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(
        &[
            "acl",
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "read",
            "--topic",
            "orders-",
            "--pattern",
            "prefixed",
            "--deny",
        ],
        &admin,
    );
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(&["acl", "list", "--format", "json"], &alice);
    assert!(ok, "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{stdout}");
    let (ok, stdout, stderr) = run(&["acl", "remove", "--permission", "deny"], &admin);
    assert!(ok && stdout.contains("removed 1"), "{stdout} {stderr}");
    let (ok, _, stderr) = run(
        &[
            "acl",
            "add",
            "--principal",
            "alice",
            "--operation",
            "read",
            "--topic",
            "t",
        ],
        &admin,
    );
    assert!(!ok && stderr.contains("Type:name"), "{stderr}");
    // brook mirror from this SASL_SSL broker to a plaintext one.
    let (ok, _, stderr) = brook_with_input(
        &[
            "produce",
            "payments",
            "--brokers",
            &running.addr,
            "--tls-ca",
            ca.to_str().unwrap(),
            "--sasl-user",
            "admin",
            "--sasl-password",
            "admin-secret",
        ],
        "p1\np2\np3\n",
    );
    assert!(ok, "{stderr}");
    let plain = start(&["--ephemeral", "--listen", "127.0.0.1:0"], dir.path());
    let (ok, stdout, stderr) = brook(
        &[
            "mirror",
            "--from",
            &running.addr,
            "--from-tls-ca",
            ca.to_str().unwrap(),
            "--from-sasl-user",
            "admin",
            "--to",
            &plain.addr,
            "--format",
            "json",
        ],
        &[("BROOK_FROM_SASL_PASSWORD", "admin-secret")],
    );
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["records"], 3, "{summary}");
    let (ok, _, stderr) = brook(
        &[
            "mirror",
            "--from",
            &running.addr,
            "--from-tls-ca",
            ca.to_str().unwrap(),
            "--from-sasl-user",
            "admin",
            "--from-sasl-password",
            "wrong",
            "--to",
            &plain.addr,
        ],
        &[],
    );
    assert!(!ok && stderr.contains("invalid credentials"), "{stderr}");
    stop(plain, 15);
    stop(running, 15);
}

#[test]
fn sighup_reloads_the_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let (running, tls) = start_with_tls(
        dir.path(),
        |tls, port| {
            format!(
                "listeners = \"SSL://127.0.0.1:{port}\"\nhttp_listen = \"off\"\nephemeral = true\n\"ssl.keystore.location\" = {:?}\n",
                tls.join("server.pem"),
            )
        },
        &[],
    );
    let kill = |signal: &str| {
        let status = Command::new("kill")
            .args([signal, &running.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    kill("-HUP");
    let line = |what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match running.log.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(_) => panic!("no log line with {what:?}"),
            }
        }
    };
    line("SIGHUP: TLS files reloaded");
    // A broken file is refused (by the signal or the file watch, whichever comes first) and
    // the certificate in use stays.
    std::fs::write(tls.join("server.pem"), "not a key").unwrap();
    kill("-HUP");
    line("cannot be used; keeping the previous ones");
    stop(running, 15);
}

#[test]
fn topic_commands_create_list_describe_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(&["--ephemeral", "--listen", "127.0.0.1:0"], dir.path());
    let b = ["--brokers", running.addr.as_str()];
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&b);
        brook(&all, &[])
    };
    let (ok, _, stderr) = run(&[
        "topic",
        "create",
        "orders",
        "-p",
        "3",
        "-c",
        "cleanup.policy=compact",
    ]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(&["topic", "create", "orders"]);
    assert!(!ok && stderr.contains("TopicAlreadyExists"), "{stderr}");
    let (ok, _, stderr) = run(&["topic", "create", "bad", "-c", "nope=1"]);
    assert!(
        !ok && stderr.contains("Unknown topic config name: nope"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = run(&["topic", "describe", "orders", "--format", "json"]);
    assert!(ok, "{stderr}");
    let described: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(described["partitions"].as_array().unwrap().len(), 3);
    let policy = described["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cleanup.policy")
        .unwrap();
    assert_eq!(policy["value"], "compact");
    assert_eq!(policy["source"], "DYNAMIC_TOPIC_CONFIG");
    let (ok, stdout, _) = run(&["topic", "describe", "orders"]);
    assert!(
        ok && stdout.contains("cleanup.policy") && stdout.contains("DYNAMIC_TOPIC_CONFIG"),
        "{stdout}"
    );
    let (ok, stdout, _) = run(&["topic", "list", "--format", "json"]);
    assert!(ok);
    let names: Vec<String> = serde_json::from_str::<serde_json::Value>(&stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["orders"]);
    // Configs: set and removed; a bad value is refused by the broker's validation.
    let (ok, _, stderr) = run(&[
        "topic",
        "alter-config",
        "orders",
        "--set",
        "retention.ms=60000",
        "--delete",
        "cleanup.policy",
    ]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(&[
        "topic",
        "alter-config",
        "orders",
        "--set",
        "cleanup.policy=nope",
    ]);
    assert!(!ok && stderr.contains("InvalidConfig"), "{stderr}");
    // Partitions only grow.
    let (ok, _, stderr) = run(&["topic", "add-partitions", "orders", "--count", "5"]);
    assert!(ok, "{stderr}");
    let (_, stdout, _) = run(&["topic", "describe", "orders", "--format", "json"]);
    let described: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(described["partitions"].as_array().unwrap().len(), 5);
    let (ok, _, stderr) = run(&["topic", "add-partitions", "orders", "--count", "2"]);
    assert!(!ok && stderr.contains("InvalidPartitions"), "{stderr}");
    // Trim: nothing to trim past the end of an empty partition.
    let (ok, stdout, stderr) = run(&[
        "topic",
        "trim",
        "orders",
        "--partition",
        "0",
        "--offset",
        "-1",
    ]);
    assert!(
        ok && stdout.contains("now starts at offset 0"),
        "{stdout} {stderr}"
    );
    let (ok, _, stderr) = run(&[
        "topic",
        "trim",
        "orders",
        "--partition",
        "0",
        "--offset",
        "5",
    ]);
    assert!(!ok && stderr.contains("OffsetOutOfRange"), "{stderr}");
    let (ok, _, stderr) = run(&["topic", "delete", "orders"]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(&["topic", "describe", "orders"]);
    assert!(
        !ok && stderr.contains("UnknownTopicOrPartition"),
        "{stderr}"
    );
    // An unreachable broker is one line, within seconds.
    let started = std::time::Instant::now();
    let (ok, _, stderr) = brook(&["topic", "list", "--brokers", "127.0.0.1:1"], &[]);
    assert!(
        !ok && stderr.starts_with("brook: cannot connect to 127.0.0.1:1"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15));
    stop(running, 15);
}

#[test]
fn cluster_info_and_health_answer_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(&["--ephemeral", "--listen", "127.0.0.1:0"], dir.path());
    let (ok, stdout, stderr) = brook(
        &[
            "cluster",
            "info",
            "--format",
            "json",
            "--brokers",
            &running.addr,
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["controller"], 1);
    assert_eq!(
        info["brokers"][0]["port"].as_i64().unwrap().to_string(),
        running.addr.rsplit(':').next().unwrap()
    );
    assert!(info["cluster_id"].as_str().is_some_and(|c| !c.is_empty()));
    let (ok, stdout, _) = brook(&["cluster", "health", "--brokers", &running.addr], &[]);
    assert!(ok && stdout.trim() == "healthy", "{stdout}");
    // Nothing listening: unhealthy, exit code 1, one line.
    let (ok, stdout, _) = brook(
        &[
            "cluster",
            "health",
            "--format",
            "json",
            "--brokers",
            "127.0.0.1:1",
        ],
        &[],
    );
    assert!(!ok);
    let health: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(health["healthy"], false);
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{stdout}"
    );
    stop(running, 15);
}

/// Runs `brook ARGS` with `input` on stdin: (success, stdout, stderr).
fn brook_with_input(args: &[&str], input: &str) -> (bool, String, String) {
    use std::process::Stdio;
    let mut child = Command::new(BROOK)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn produce_consume_and_group_commands_work_as_scripts_use_them() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(&["--ephemeral", "--listen", "127.0.0.1:0"], dir.path());
    let b = ["--brokers", running.addr.as_str()];
    let with_b = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&b);
        all.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: &[&str]| {
        let all = with_b(args);
        brook(&all.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    };
    let run_in = |args: &[&str], input: &str| {
        let all = with_b(args);
        brook_with_input(&all.iter().map(String::as_str).collect::<Vec<_>>(), input)
    };
    assert!(run(&["topic", "create", "loans", "-p", "3"]).0);
    // Keys split at the delimiter, headers on every record; keyed records go where Java's
    // partitioner puts them.
    let lines = "loan-1:requested\nloan-2:requested\nloan-1:approved\n";
    let (ok, stdout, stderr) = run_in(
        &[
            "produce",
            "loans",
            "-k",
            ":",
            "-H",
            "source=cli",
            "-z",
            "zstd",
            "--format",
            "json",
        ],
        lines,
    );
    assert!(ok, "{stderr}");
    let produced: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let total: i64 = produced
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["records"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 3);
    let (ok, stdout, stderr) = run(&["consume", "loans", "-e", "--format", "json"]);
    assert!(ok, "{stderr}");
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    let loan1: Vec<&serde_json::Value> = records.iter().filter(|r| r["key"] == "loan-1").collect();
    assert_eq!(loan1.len(), 2);
    assert_eq!(loan1[0]["value"], "requested");
    assert_eq!(loan1[1]["value"], "approved");
    assert_eq!(loan1[0]["partition"], loan1[1]["partition"]);
    assert_eq!(
        loan1[0]["partition"].as_i64().unwrap(),
        i64::from(brook_client::partition_for_key(b"loan-1", 3))
    );
    assert_eq!(loan1[0]["headers"][0]["key"], "source");
    // A template, one partition, from an offset; -n stops early.
    let p = loan1[0]["partition"].as_i64().unwrap().to_string();
    let o = loan1[1]["offset"].as_i64().unwrap().to_string();
    let (ok, stdout, stderr) = run(&[
        "consume",
        "loans",
        "-p",
        &p,
        "-o",
        &o,
        "-e",
        "-F",
        "%k=%v@%o %h\\n",
    ]);
    assert!(ok, "{stderr}");
    // "approved" was the last record of its partition.
    assert_eq!(stdout, format!("loan-1=approved@{o} source=cli\n"));
    let (ok, stdout, _) = run(&["consume", "loans", "-n", "1", "-F", "%v\\n"]);
    assert!(ok);
    assert_eq!(stdout.lines().count(), 1);
    // From a time after every record: nothing, and -e ends it.
    let (ok, stdout, stderr) = run(&["consume", "loans", "-e", "-o", "@2999-01-01T00:00:00Z"]);
    assert!(ok && stdout.is_empty(), "{stdout} {stderr}");
    // A group: consume commits, describe shows the lag per partition, seek moves it.
    let (ok, _, stderr) = run(&["consume", "loans", "-g", "audit", "-n", "2"]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(&["group", "describe", "audit", "--format", "json"]);
    assert!(ok, "{stderr}");
    let partitions: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(partitions.len(), 3);
    let lag: i64 = partitions.iter().map(|p| p["lag"].as_i64().unwrap()).sum();
    assert_eq!(lag, 1, "two of three records read: {stdout}");
    for p in &partitions {
        assert_eq!(p["topic"], "loans");
        let (committed, end) = (p["committed"].as_i64().unwrap(), p["end"].as_i64().unwrap());
        assert_eq!(p["lag"].as_i64().unwrap(), end - committed);
        if end > committed {
            assert!(p["lag_ms"].as_i64().is_some(), "{p}");
        }
    }
    let (ok, stdout, _) = run(&["group", "list", "--format", "json"]);
    assert!(ok && stdout.contains("\"audit\""), "{stdout}");
    let (ok, _, stderr) = run(&["group", "seek", "audit", "--topic", "loans", "--to", "end"]);
    assert!(ok, "{stderr}");
    let (_, stdout, _) = run(&["group", "describe", "audit", "--format", "json"]);
    let partitions: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert!(partitions.iter().all(|p| p["lag"] == 0), "{stdout}");
    // The group resumes where it committed: nothing left.
    let (ok, stdout, _) = run(&["consume", "loans", "-g", "audit", "-e"]);
    assert!(ok && stdout.is_empty(), "{stdout}");
    let (ok, stdout, _) = run(&["group", "describe", "audit"]);
    assert!(ok && stdout.contains("LAG TIME"), "{stdout}");
    let (ok, _, stderr) = run(&["group", "delete", "audit"]);
    assert!(ok, "{stderr}");
    let (_, stdout, _) = run(&["group", "list", "--format", "json"]);
    assert!(!stdout.contains("\"audit\""), "{stdout}");
    // Clear errors: an unknown topic, bad arguments, an unreachable broker.
    let (ok, _, stderr) = run(&["consume", "nope", "-e"]);
    assert!(
        !ok && stderr.contains("UnknownTopicOrPartition"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(&["consume", "loans", "-o", "yesterday"]);
    assert!(!ok && stderr.contains("--offset"), "{stderr}");
    let (ok, _, stderr) = run_in(&["produce", "loans", "-z", "brotli"], "x\n");
    assert!(!ok && stderr.contains("--compression"), "{stderr}");
    let (ok, _, stderr) =
        brook_with_input(&["produce", "loans", "--brokers", "127.0.0.1:1"], "x\n");
    assert!(
        !ok && stderr.starts_with("brook: cannot connect"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stop(running, 15);
}

/// Sends `body` as a POST to `path` on `addr`: (status, body).
fn http_post(addr: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        text.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    )
}

fn http_addr(r: &Running) -> String {
    r.startup_line
        .split("HTTP http://")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the startup line names the HTTP address")
        .to_string()
}

#[test]
fn mirror_copies_topics_records_groups_and_schemas_between_two_brokers() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--ephemeral",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ];
    let source = start(&args, dir.path());
    let target = start(&args, dir.path());
    let (src, dst) = (source.addr.clone(), target.addr.clone());
    assert!(
        brook(
            &["topic", "create", "orders", "-p", "2", "--brokers", &src],
            &[]
        )
        .0
    );
    let lines: String = (0..2_000)
        .map(|i| format!("order-{}:event-{i}\n", i % 50))
        .collect();
    let (ok, _, stderr) = brook_with_input(
        &[
            "produce",
            "orders",
            "-k",
            ":",
            "-H",
            "origin=test",
            "--brokers",
            &src,
        ],
        &lines,
    );
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = brook(
        &[
            "consume",
            "orders",
            "-g",
            "shipping",
            "-n",
            "500",
            "--brokers",
            &src,
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    let schema = r#"{"schema": "{\"type\": \"record\", \"name\": \"Order\", \"fields\": [{\"name\": \"id\", \"type\": \"string\"}]}"}"#;
    let (status, body) = http_post(
        &http_addr(&source),
        "/subjects/orders-value/versions",
        schema,
    );
    assert_eq!(status, 200, "{body}");

    let registry_from = format!("http://{}", http_addr(&source));
    let registry_to = format!("http://{}", http_addr(&target));
    let (ok, stdout, stderr) = brook(
        &[
            "mirror",
            "--from",
            &src,
            "--to",
            &dst,
            "--registry-from",
            &registry_from,
            "--registry-to",
            &registry_to,
            "--format",
            "json",
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["records"], 2_000, "{summary}");
    assert_eq!(summary["topics"][0]["topic"], "orders");
    assert_eq!(summary["groups"][0]["group"], "shipping");
    assert_eq!(summary["schemas"], 1);
    // The target has the records (with keys and headers) and the group's position.
    let (ok, stdout, _) = brook(
        &[
            "consume",
            "orders",
            "-e",
            "--format",
            "json",
            "--brokers",
            &dst,
        ],
        &[],
    );
    assert!(ok);
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2_000);
    assert_eq!(records[0]["headers"][0]["value"], "test");
    let (_, stdout, _) = brook(
        &[
            "group",
            "describe",
            "shipping",
            "--format",
            "json",
            "--brokers",
            &dst,
        ],
        &[],
    );
    let partitions: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let lag: i64 = partitions.iter().map(|p| p["lag"].as_i64().unwrap()).sum();
    assert_eq!(lag, 1_500, "{stdout}");
    assert_eq!(
        http_get(&http_addr(&target), "/subjects").1,
        r#"["orders-value"]"#
    );
    // A following mirror killed with SIGKILL while copying 50,000 new records, then run
    // again: the target ends with exactly the source's records, none twice.
    let more: String = (0..50_000).map(|i| format!("late-{i}\n")).collect();
    let (ok, _, stderr) = brook_with_input(&["produce", "orders", "--brokers", &src], &more);
    assert!(ok, "{stderr}");
    let mut follower = Command::new(BROOK)
        .args(["mirror", "--from", &src, "--to", &dst, "--follow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Here, 150 ms in, about 33,000 of the 52,000 records have reached the target.
    std::thread::sleep(Duration::from_millis(150));
    follower.kill().unwrap();
    follower.wait().unwrap();
    let (ok, _, stderr) = brook(&["mirror", "--from", &src, "--to", &dst], &[]);
    assert!(ok, "{stderr}");
    let values = |brokers: &str| {
        let (ok, stdout, stderr) = brook(
            &[
                "consume",
                "orders",
                "-e",
                "-F",
                "%p %v\n",
                "--brokers",
                brokers,
            ],
            &[],
        );
        assert!(ok, "{stderr}");
        let mut lines: Vec<String> = stdout.lines().map(String::from).collect();
        // Per partition in offset order; partitions read interleaved.
        lines.sort_by_key(|l| l.split(' ').next().unwrap_or("").to_string());
        lines
    };
    let (from, to) = (values(&src), values(&dst));
    assert_eq!(from.len(), 52_000);
    assert_eq!(from, to);

    // Again: nothing new, nothing copied; an unreachable side is a one-line error.
    let (ok, stdout, _) = brook(&["mirror", "--from", &src, "--to", &dst], &[]);
    assert!(ok && stdout.contains(" 0 records"), "{stdout}");
    let (ok, _, stderr) = brook(&["mirror", "--from", &src, "--to", "127.0.0.1:1"], &[]);
    assert!(
        !ok && stderr.starts_with("brook: cannot connect"),
        "{stderr}"
    );
    stop(source, 15);
    stop(target, 15);
}

#[test]
fn schema_commands_register_list_get_check_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(
        &[
            "--ephemeral",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    let registry = format!("http://{}", http_addr(&running));
    let r = ["--registry", registry.as_str()];
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&r);
        brook(&all, &[])
    };
    let v1 = dir.path().join("v1.avsc");
    std::fs::write(
        &v1,
        r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"string"}]}"#,
    )
    .unwrap();
    // A new required field without a default breaks BACKWARD compatibility.
    let bad = dir.path().join("bad.avsc");
    std::fs::write(
        &bad,
        r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"}]}"#,
    )
    .unwrap();
    let good = dir.path().join("good.avsc");
    std::fs::write(
        &good,
        r#"{"type":"record","name":"Loan","fields":[{"name":"id","type":"string"},{"name":"amount","type":"long","default":0}]}"#,
    )
    .unwrap();
    let v1 = v1.to_str().unwrap();
    let (ok, stdout, stderr) = run(&["schema", "register", "loans-value", "-f", v1]);
    assert!(ok && stdout.contains("id 1"), "{stdout} {stderr}");
    let (ok, stdout, _) = run(&[
        "schema",
        "check",
        "loans-value",
        "-f",
        bad.to_str().unwrap(),
    ]);
    assert!(!ok && stdout.contains("NOT compatible"), "{stdout}");
    let (ok, stdout, _) = run(&[
        "schema",
        "check",
        "loans-value",
        "-f",
        good.to_str().unwrap(),
    ]);
    assert!(
        ok && stdout.contains("compatible with loans-value"),
        "{stdout}"
    );
    let (ok, _, _) = run(&[
        "schema",
        "register",
        "loans-value",
        "-f",
        good.to_str().unwrap(),
    ]);
    assert!(ok);
    let (ok, stdout, _) = run(&["schema", "list", "--format", "json"]);
    assert!(ok);
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed[0]["subject"], "loans-value");
    assert_eq!(listed[0]["versions"], serde_json::json!([1, 2]));
    let (ok, stdout, _) = run(&[
        "schema",
        "get",
        "loans-value",
        "--version",
        "1",
        "--format",
        "json",
    ]);
    assert!(ok);
    let got: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(got["version"], 1);
    assert!(got["schema"].as_str().unwrap().contains("\"Loan\""));
    let (ok, _, _) = run(&["schema", "delete", "loans-value"]);
    assert!(ok);
    let (ok, _, stderr) = run(&["schema", "get", "loans-value"]);
    assert!(!ok && stderr.contains("HTTP 404"), "{stderr}");
    let (ok, _, stderr) = brook(
        &["schema", "list", "--registry", "https://127.0.0.1:1"],
        &[],
    );
    assert!(!ok && stderr.contains("--registry-ca"), "{stderr}");
    let (ok, _, stderr) = brook(&["schema", "list", "--registry", "ftp://127.0.0.1:1"], &[]);
    assert!(!ok && stderr.contains("http:// or https://"), "{stderr}");
    stop(running, 15);
}

#[test]
fn schema_commands_reach_an_https_registry_with_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = common::free_port();
    let (running, tls) = start_with_tls(
        dir.path(),
        |tls, port| {
            format!(
                "listeners = \"SSL://127.0.0.1:{port}\"\nhttp_listen = \"127.0.0.1:{http_port}\"\nephemeral = true\n\"ssl.keystore.location\" = {:?}\n\"brook.http.tls\" = true\n",
                tls.join("server.pem"),
            )
        },
        &[],
    );
    // The server certificate of `brook tls init` names localhost and 127.0.0.1.
    let registry = format!("https://127.0.0.1:{http_port}");
    let ca = tls.join("ca.pem");
    let schema = dir.path().join("s.avsc");
    std::fs::write(&schema, r#"{"type":"string"}"#).unwrap();
    let (ok, stdout, stderr) = brook(
        &[
            "schema",
            "register",
            "events-value",
            "-f",
            schema.to_str().unwrap(),
            "--registry",
            &registry,
            "--registry-ca",
            ca.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok && stdout.contains("id 1"), "{stdout} {stderr}");
    let (ok, stdout, _) = brook(
        &[
            "schema",
            "list",
            "--format",
            "json",
            "--registry",
            &registry,
            "--registry-ca",
            ca.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok && stdout.contains("events-value"), "{stdout}");
    let (ok, _, stderr) = brook(&["schema", "list", "--registry", &registry], &[]);
    assert!(!ok && stderr.contains("--registry-ca"), "{stderr}");
    stop(running, 15);
}
