//! SaslHandshake (key 17): the client names its SASL mechanism; the answer lists the enabled
//! ones. The connection's [`crate::auth::sasl::Session`] keeps what was chosen; a refused
//! handshake closes the connection once answered.

use brook_protocol::kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};

use super::Ctx;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let outcome = ctx
        .session
        .lock()
        .handshake(ctx.version(), req.mechanism.as_str());
    let names = |names: Vec<&'static str>| {
        names
            .into_iter()
            .map(StrBytes::from_static_str)
            .collect::<Vec<_>>()
    };
    match outcome {
        Ok(enabled) => SaslHandshakeResponse::default().with_mechanisms(names(enabled)),
        Err((refusal, enabled)) => {
            tracing::info!(peer = ?ctx.peer, mechanism = %req.mechanism.as_str(), reason = %refusal.message, "SASL handshake refused");
            SaslHandshakeResponse::default()
                .with_error_code(refusal.code.code())
                .with_mechanisms(names(enabled))
        }
    }
}
