//! SaslAuthenticate (key 36): one message of the SASL mechanism chosen by SaslHandshake, and
//! the server's reply. v1+ answers carry the session's lifetime (KIP-368). A failure is
//! answered with SASL_AUTHENTICATION_FAILED after `connection.failed.authentication.delay.ms`,
//! and the connection is closed.

use std::time::{Duration, Instant};

use brook_protocol::kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use bytes::Bytes;

use super::Ctx;
use crate::auth::sasl::{Refusal, Round};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

pub(crate) async fn handle(
    ctx: &Ctx<'_>,
    req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    match authenticate(ctx, &req.auth_bytes, false).await {
        Ok(round) => SaslAuthenticateResponse::default()
            .with_error_message(None)
            .with_auth_bytes(Bytes::from(round.reply))
            .with_session_lifetime_ms(round.session_lifetime_ms),
        Err(refusal) => SaslAuthenticateResponse::default()
            .with_error_code(refusal.code.code())
            .with_error_message(Some(StrBytes::from_string(refusal.message))),
    }
}

/// Runs one round of the connection's SASL exchange (`raw`: a bare frame after a version 0
/// handshake); a failed authentication is delayed before it is answered.
pub(crate) async fn authenticate(
    ctx: &Ctx<'_>,
    message: &[u8],
    raw: bool,
) -> Result<Round, Refusal> {
    let outcome = match crate::auth::scram_nonce() {
        Ok(nonce) => ctx.session.lock().authenticate(
            message,
            raw,
            &ctx.state.credentials,
            &nonce,
            Instant::now(),
        ),
        Err(e) => Err(Refusal::failed(format!("Authentication failed: {e}"))),
    };
    match &outcome {
        Ok(_) => {
            tracing::debug!(peer = ?ctx.peer, principal = %ctx.session.lock().principal(), "SASL round done")
        }
        Err(refusal) => {
            tracing::info!(peer = ?ctx.peer, reason = %refusal.message, "failed authentication");
            if refusal.is_failed_authentication() {
                let delay = ctx.state.config.connection_failed_authentication_delay_ms;
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
        }
    }
    outcome
}
