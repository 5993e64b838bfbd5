//! The broker's HTTP listener (`http_listen`, `--http-listen`; default `127.0.0.1:8081`, the
//! port schema registry clients default to; `off` disables it): one axum router over the
//! broker's shared state, one module per area:
//! - [`health`]: liveness and readiness probes;
//! - [`metrics`]: Prometheus metrics, consumer lag under kafka_exporter's names;
//! - [`registry`]: the schema registry's Confluent-compatible REST API;
//! - [`streams`]: aggregate streams (reads through the key index, conditional appends,
//!   CloudEvents, live follow) and browsing partitions;
//! - [`auth`]: basic authentication and ACL checks in front of all of them.
//!
//! With `brook.http.tls` the listener speaks HTTPS with the Kafka listeners' certificate.
//!
//! The web console is to join as a module of its own. The server stops with the broker (in-flight requests finish first).

pub(crate) mod auth;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod registry;
pub(crate) mod streams;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;

use crate::state::BrokerState;

/// Every route of every area.
pub(crate) fn router(state: Arc<BrokerState>) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(registry::routes())
        .merge(streams::routes(max_body_bytes(&state)))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
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
    let tls = state
        .config
        .brook_http_tls
        .then(|| state.security.default.tls.clone())
        .flatten();
    let app = router(state).into_make_service_with_connect_info::<auth::PeerAddr>();
    let stopped = async move {
        let _ = shutdown.changed().await;
    };
    let served = match tls {
        Some(tls) => {
            axum::serve(TlsListener::start(listener, tls), app)
                .with_graceful_shutdown(stopped)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
    };
    if let Err(e) = served {
        tracing::warn!(error = %e, "the HTTP listener failed");
    }
}

/// How long an HTTPS client may take for its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTPS connections, handshaken off the accept loop (a slow client does not hold others up).
pub(crate) struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    fn start(listener: TcpListener, tls: Arc<crate::auth::tls::Tls>) -> Self {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "HTTPS accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(?peer, error = %e, "HTTPS handshake failed"),
                        Err(_) => tracing::debug!(?peer, "HTTPS handshake timed out"),
                    }
                });
            }
        });
        Self { local, ready }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended: wait for the shutdown that ends serving.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
