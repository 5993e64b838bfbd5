//! Brook client library. The producer, consumer and admin clients arrive in later issues.
