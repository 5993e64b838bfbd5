//! Authentication (the security issue, in parts): what a SASL mechanism checks, apart from
//! the connection that carries it.
//!
//! - [`scram`]: SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as the server side
//!   runs them: salted credentials and the two-message exchange, as pure functions over the
//!   client's messages (the SaslAuthenticate handler comes next).
//! - `credentials`: the users' SCRAM credentials, durable in the data directory, changed
//!   through AlterUserScramCredentials.

pub(crate) mod credentials;
pub mod scram;
