//! Probes for containers and Kubernetes: `GET /health/live` answers 200 while the process
//! serves HTTP at all; `GET /health/ready` answers 200 once the logs are open, the
//! coordinators have replayed their state and the Kafka listener accepts connections, and
//! 503 with a JSON reason before that and from the start of shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::BrokerState;

pub(crate) fn routes() -> Router<Arc<BrokerState>> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "live" }))
}

async fn ready(State(state): State<Arc<BrokerState>>) -> (StatusCode, Json<Value>) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "not ready",
                "reason": "the Kafka listener is not accepting connections (starting or shutting down)",
            })),
        )
    }
}
