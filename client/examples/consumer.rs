//! Reads a topic as a member of a consumer group, printing each record, until interrupted.
//!
//! `cargo run -p brook-client --example consumer -- 127.0.0.1:9092 loans projection`

use brook_client::{ClientConfig, Consumer, ConsumerConfig, GroupConfig, StartAt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "loans".into());
    let group = args.next().unwrap_or_else(|| "projection".into());
    let mut consumer = Consumer::new(ConsumerConfig {
        // A new group starts from the oldest record (Kafka's default is the end).
        reset: StartAt::Beginning,
        ..ConsumerConfig::new(ClientConfig::new(&brokers))
    })
    .await?;
    // Offsets are committed every 5 s, before rebalances and on close.
    consumer
        .subscribe(GroupConfig::new(group), &[&topic])
        .await?;
    loop {
        tokio::select! {
            records = consumer.poll() => {
                for r in records? {
                    let key = r.key.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                    let value = r.value.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                    println!("{}@{} {key}: {value}", r.partition, r.offset);
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    consumer.close().await?;
    Ok(())
}
