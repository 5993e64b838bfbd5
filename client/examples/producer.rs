//! Sends a few keyed events and prints where each landed.
//!
//! `cargo run -p brook-client --example producer -- 127.0.0.1:9092 loans`

use brook_client::{ClientConfig, Producer, ProducerConfig, ProducerRecord};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "loans".into());
    // Idempotent, acks=all, 5 ms linger: Kafka's producer defaults.
    let producer = Producer::new(ProducerConfig::new(ClientConfig::new(&brokers))).await?;
    let mut deliveries = Vec::new();
    for (loan, event) in [
        ("loan-1", "requested"),
        ("loan-2", "requested"),
        ("loan-1", "approved"),
    ] {
        let record = ProducerRecord::new(topic.clone(), event)
            .key(loan)
            .header("source", "example");
        deliveries.push((loan, event, producer.send(record).await?));
    }
    for (loan, event, delivery) in deliveries {
        let written = delivery.await?;
        println!(
            "{loan} {event}: partition {} offset {}",
            written.partition, written.offset
        );
    }
    producer.close().await?;
    Ok(())
}
