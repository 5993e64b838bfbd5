//! The broker's HTTP listener (`http_listen`, `--http-listen`; default `127.0.0.1:8081`, the
//! port schema registry clients default to; `off` disables it): one axum router over the
//! broker's shared state, one module per area:
//! - [`health`]: liveness and readiness probes;
//! - [`metrics`]: Prometheus metrics, consumer lag under kafka_exporter's names;
//! - [`registry`]: the schema registry's Confluent-compatible REST API;
//! - [`streams`]: aggregate streams (reads through the key index, conditional appends,
//!   CloudEvents, live follow) and browsing partitions.
//!
//! The web console is to join as a module of its own. The server stops with the broker (in-flight requests finish first).

pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod registry;
pub(crate) mod streams;

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::BrokerState;

/// Every route of every area.
pub(crate) fn router(state: Arc<BrokerState>) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(registry::routes())
        .merge(streams::routes(max_body_bytes(&state)))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// The largest stream append body: a batch of `message.max.bytes` plus room for the JSON
/// around the values.
fn max_body_bytes(state: &BrokerState) -> usize {
    usize::try_from(state.config.message_max_bytes)
        .unwrap_or(1 << 20)
        .saturating_mul(2)
}

/// Counts every answered request by area and status (`brook_http_requests_total`).
async fn count(
    axum::extract::State(state): axum::extract::State<Arc<BrokerState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    state
        .metrics
        .http_request(&path, response.status().as_u16());
    response
}

/// Serves `listener` until `shutdown` changes.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(state);
    let stopped = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::warn!(error = %e, "the HTTP listener failed");
    }
}
