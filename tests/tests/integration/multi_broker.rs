//! brook-client against a cluster of two brokers, staged with two proxies in front of one
//! Brook: Metadata answers are rewritten so that partition 0 is led by "broker 1" (proxy A)
//! and partition 1 by "broker 2" (proxy B). The producer and the consumer must send each
//! partition's Produce and Fetch to its own leader.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_broker::EmbeddedBroker;
use brook_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
    StartAt,
};
use brook_protocol::kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use brook_protocol::kafka_protocol::messages::{
    FetchRequest, FindCoordinatorResponse, MetadataResponse, ProduceRequest, RequestHeader,
    ResponseHeader,
};
use brook_protocol::kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::runtime;

/// What a proxy saw: (api key, partition) of each Produce and Fetch partition, and
/// (api key, -1) of every other request.
type Seen = Arc<Mutex<BTreeSet<(i16, i32)>>>;
/// How many requests of each api key a proxy carried.
type Counted = Arc<Mutex<std::collections::BTreeMap<i16, usize>>>;

async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> Option<Bytes> {
    let size = r.read_i32().await.ok()?;
    let mut buf = vec![0u8; usize::try_from(size).ok()?];
    r.read_exact(&mut buf).await.ok()?;
    Some(Bytes::from(buf))
}

/// Notes the partitions of a Produce or Fetch request.
fn note_request(frame: &Bytes, seen: &Seen, counted: &Counted) -> (i16, i16) {
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    *counted.lock().unwrap().entry(key).or_default() += 1;
    let mut body = frame.clone();
    match key {
        0 => {
            let _ =
                RequestHeader::decode(&mut body, ProduceRequest::header_version(version)).unwrap();
            let req = ProduceRequest::decode(&mut body, version).unwrap();
            for t in req.topic_data {
                for p in t.partition_data {
                    seen.lock().unwrap().insert((0, p.index));
                }
            }
        }
        1 => {
            let _ =
                RequestHeader::decode(&mut body, FetchRequest::header_version(version)).unwrap();
            let req = FetchRequest::decode(&mut body, version).unwrap();
            for t in req.topics {
                for p in t.partitions {
                    seen.lock().unwrap().insert((1, p.partition));
                }
            }
        }
        _ => {}
    }
    (key, version)
}

/// The Metadata answer of a two-broker cluster: A is node 1, B node 2; partition p is led
/// by node 1 + p % 2.
fn rewrite_metadata(frame: Bytes, version: i16, a: &str, b: &str) -> Bytes {
    let mut body = frame;
    let header_version = MetadataResponse::header_version(version);
    let header = ResponseHeader::decode(&mut body, header_version).unwrap();
    let mut meta = MetadataResponse::decode(&mut body, version).unwrap();
    let broker = |id: i32, addr: &str| {
        let (host, port) = addr.rsplit_once(':').unwrap();
        MetadataResponseBroker::default()
            .with_node_id(id.into())
            .with_host(StrBytes::from_string(host.to_string()))
            .with_port(port.parse().unwrap())
    };
    meta.brokers = vec![broker(1, a), broker(2, b)];
    meta.controller_id = 1.into();
    for t in &mut meta.topics {
        for p in &mut t.partitions {
            p.leader_id = (1 + p.partition_index % 2).into();
        }
    }
    let mut out = BytesMut::new();
    header.encode(&mut out, header_version).unwrap();
    meta.encode(&mut out, version).unwrap();
    out.freeze()
}

/// A FindCoordinator answer naming node 1 (`a`) as the coordinator.
fn rewrite_coordinator(frame: Bytes, version: i16, a: &str) -> Bytes {
    let mut body = frame;
    let header_version = FindCoordinatorResponse::header_version(version);
    let header = ResponseHeader::decode(&mut body, header_version).unwrap();
    let mut answer = FindCoordinatorResponse::decode(&mut body, version).unwrap();
    let (host, port) = a.rsplit_once(':').unwrap();
    let port: i32 = port.parse().unwrap();
    answer.node_id = 1.into();
    answer.host = StrBytes::from_string(host.to_string());
    answer.port = port;
    for c in &mut answer.coordinators {
        c.node_id = 1.into();
        c.host = StrBytes::from_string(host.to_string());
        c.port = port;
    }
    let mut out = BytesMut::new();
    header.encode(&mut out, header_version).unwrap();
    answer.encode(&mut out, version).unwrap();
    out.freeze()
}

/// A proxy to `upstream` on `listener`, rewriting Metadata and noting what it carries.
fn proxy(
    listener: tokio::net::TcpListener,
    upstream: String,
    addrs: (String, String),
    seen: Seen,
    counted: Counted,
) {
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let asked: Arc<Mutex<VecDeque<(i16, i16)>>> = Arc::default();
            let (asked_up, seen, counted) =
                (Arc::clone(&asked), Arc::clone(&seen), Arc::clone(&counted));
            tokio::spawn(async move {
                while let Some(frame) = read_frame(&mut cr).await {
                    asked_up
                        .lock()
                        .unwrap()
                        .push_back(note_request(&frame, &seen, &counted));
                    let mut out = BytesMut::with_capacity(4 + frame.len());
                    out.put_i32(frame.len() as i32);
                    out.put_slice(&frame);
                    if sw.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
            let (a, b) = addrs.clone();
            tokio::spawn(async move {
                while let Some(frame) = read_frame(&mut sr).await {
                    // Produce acks=0 is never answered; everything this test sends is.
                    let Some((key, version)) = asked.lock().unwrap().pop_front() else {
                        return;
                    };
                    let frame = match key {
                        3 => rewrite_metadata(frame, version, &a, &b),
                        10 => rewrite_coordinator(frame, version, &a),
                        _ => frame,
                    };
                    let mut out = BytesMut::with_capacity(4 + frame.len());
                    out.put_i32(frame.len() as i32);
                    out.put_slice(&frame);
                    if cw.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

#[test]
fn each_partition_goes_to_its_own_leader() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let upstream = broker.bootstrap();
    let rt = runtime();
    rt.block_on(async {
        Admin::connect(&upstream, &Default::default(), Duration::from_secs(10))
            .await
            .unwrap()
            .create_topic("spread", 2, &[])
            .await
            .unwrap();
        let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (a, b) = (
            la.local_addr().unwrap().to_string(),
            lb.local_addr().unwrap().to_string(),
        );
        let (seen_a, seen_b): (Seen, Seen) = (Arc::default(), Arc::default());
        proxy(
            la,
            upstream.clone(),
            (a.clone(), b.clone()),
            Arc::clone(&seen_a),
            Counted::default(),
        );
        proxy(
            lb,
            upstream.clone(),
            (a.clone(), b.clone()),
            Arc::clone(&seen_b),
            Counted::default(),
        );
        let config = ClientConfig {
            timeout: Duration::from_secs(10),
            ..ClientConfig::new(&a)
        };
        let producer = Producer::new(ProducerConfig::new(config.clone()))
            .await
            .unwrap();
        for i in 0..1_000 {
            producer
                .send(ProducerRecord::new("spread", format!("v{i}")).partition(i % 2))
                .await
                .unwrap();
        }
        producer.close().await.unwrap();
        let mut consumer = Consumer::new(ConsumerConfig {
            max_wait: Duration::from_millis(100),
            ..ConsumerConfig::new(config)
        })
        .await
        .unwrap();
        consumer
            .assign("spread", None, StartAt::Beginning)
            .await
            .unwrap();
        let mut read = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while read < 1_000 && tokio::time::Instant::now() < deadline {
            read += consumer.poll().await.unwrap().len();
        }
        assert_eq!(read, 1_000);
        let (sa, sb) = (
            seen_a.lock().unwrap().clone(),
            seen_b.lock().unwrap().clone(),
        );
        assert_eq!(
            sa,
            BTreeSet::from([(0, 0), (1, 0)]),
            "broker 1 leads partition 0 only"
        );
        assert_eq!(
            sb,
            BTreeSet::from([(0, 1), (1, 1)]),
            "broker 2 leads partition 1 only"
        );
    });
}

/// A transactional producer finds its coordinator once, not before every request of every
/// transaction (each lookup is a round trip on the transaction's critical path).
#[test]
fn a_transactional_producer_finds_its_coordinator_once() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let upstream = broker.bootstrap();
    let rt = runtime();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let counted = Counted::default();
        // Both "brokers" of the rewritten metadata are this one proxy.
        proxy(
            listener,
            upstream.clone(),
            (addr.clone(), addr.clone()),
            Seen::default(),
            Arc::clone(&counted),
        );
        let config = ClientConfig {
            timeout: Duration::from_secs(10),
            ..ClientConfig::new(&addr)
        };
        Admin::connect(&addr, &Default::default(), Duration::from_secs(10))
            .await
            .unwrap()
            .create_topic("txn-coordinator", 2, &[])
            .await
            .unwrap();
        let producer = Producer::new(ProducerConfig {
            transactional_id: Some("finds-once".into()),
            ..ProducerConfig::new(config)
        })
        .await
        .unwrap();
        for round in 0..10 {
            producer.begin_transaction().await.unwrap();
            for p in 0..2 {
                producer
                    .send(ProducerRecord::new("txn-coordinator", format!("r{round}")).partition(p))
                    .await
                    .unwrap();
            }
            if round % 3 == 2 {
                producer.abort_transaction().await.unwrap();
            } else {
                producer.commit_transaction().await.unwrap();
            }
        }
        producer.close().await.unwrap();
        let counted = counted.lock().unwrap().clone();
        // 10 transactions: 20 AddPartitionsToTxn, 10 EndTxn, and one FindCoordinator.
        assert_eq!(
            counted.get(&24),
            Some(&20),
            "AddPartitionsToTxn: {counted:?}"
        );
        assert_eq!(counted.get(&26), Some(&10), "EndTxn: {counted:?}");
        assert_eq!(counted.get(&10), Some(&1), "FindCoordinator: {counted:?}");
    });
}
