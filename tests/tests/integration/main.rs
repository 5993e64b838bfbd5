//! Brook's integration tests, in one binary so the real clients are linked once.
//!
//! Each module drives a broker (in-process or as a process) with a real client:
//! librdkafka through the `rdkafka` crate, kafka-python, kafkajs, Debian's kcat, and a raw
//! protocol client for byte-level checks.

mod bad_input;
mod external_clients;
mod librdkafka;
mod restart;
