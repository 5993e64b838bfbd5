//! Kafka API handlers, one file per API, and the registry they are dispatched from.
//!
//! Each handler module declares `VERSIONS` (the range advertised in ApiVersions) and
//! `async fn handle(ctx, request) -> response`. The [`handlers!`] list below is the single
//! place that names them: it produces both the dispatch `match` and the registry that
//! ApiVersions answers from, so the two cannot disagree.

use brook_protocol::kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use brook_protocol::kafka_protocol::protocol::VersionRange;

pub(crate) use crate::auth::acl::{Operation, ResourceType};
use crate::state::BrokerState;

mod acl_common;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod alter_user_scram_credentials;
mod api_versions;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_producers;
mod describe_transactions;
mod describe_user_scram_credentials;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod produce;
mod sasl_authenticate;
mod sasl_handshake;
mod sync_group;
mod txn_offset_commit;

pub(crate) use produce::{append_stream, StreamRefused};
pub(crate) use produce::{begin as begin_produce, transaction_gate};
pub(crate) use sasl_authenticate::authenticate as sasl_round;

/// What a handler sees of the request beyond its body.
pub(crate) struct Ctx<'a> {
    pub(crate) state: &'a std::sync::Arc<BrokerState>,
    pub(crate) header: &'a RequestHeader,
    /// The client's address, when the socket knows it.
    pub(crate) peer: Option<std::net::SocketAddr>,
    /// The address clients of the listener this request came through connect to.
    pub(crate) listener: &'a crate::listeners::Advertised,
    /// Who the connection is, and its SASL state.
    pub(crate) session: &'a parking_lot::Mutex<crate::auth::sasl::Session>,
    /// The principal (`User:alice`) and client address ACLs are checked with; empty when
    /// the authorizer is off.
    pub(crate) identity: Identity,
}

/// Who is asking, as ACLs name it.
#[derive(Debug, Default)]
pub(crate) struct Identity {
    pub(crate) principal: String,
    pub(crate) host: String,
}

impl Identity {
    /// The connection's identity when the authorizer needs it (nothing is built otherwise).
    pub(crate) fn of(
        state: &BrokerState,
        session: &parking_lot::Mutex<crate::auth::sasl::Session>,
        peer: Option<std::net::SocketAddr>,
    ) -> Self {
        if !state.security.authorizer.enabled() {
            return Self::default();
        }
        Self {
            principal: session.lock().principal().to_string(),
            host: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        }
    }
}

impl Ctx<'_> {
    pub(crate) fn version(&self) -> i16 {
        self.header.request_api_version
    }

    pub(crate) fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }

    /// Whether the client may do `operation` on the resource (always, without an authorizer).
    pub(crate) fn allowed(&self, operation: Operation, resource: ResourceType, name: &str) -> bool {
        self.state.security.authorizer.authorize(
            &self.identity.principal,
            &self.identity.host,
            operation,
            resource,
            name,
        )
    }

    /// [`Ctx::allowed`] on the cluster resource.
    pub(crate) fn allowed_on_cluster(&self, operation: Operation) -> bool {
        self.allowed(
            operation,
            ResourceType::Cluster,
            crate::auth::acl::CLUSTER_NAME,
        )
    }

    /// Kafka's authorizeByResourceType: whether some resource of the type allows it.
    pub(crate) fn allowed_on_any(&self, operation: Operation, resource: ResourceType) -> bool {
        self.state.security.authorizer.authorize_any(
            &self.identity.principal,
            &self.identity.host,
            operation,
            resource,
        )
    }

    /// The "authorized operations" bit field of a resource (bit n: operation n allowed).
    pub(crate) fn authorized_operations(&self, resource: ResourceType, name: &str) -> i32 {
        crate::auth::acl::supported_operations(resource)
            .iter()
            .filter(|op| self.allowed(**op, resource, name))
            .fold(0, |bits, op| bits | 1 << op.code())
    }

    /// The client's host as Kafka reports it in group descriptions (`/127.0.0.1`).
    pub(crate) fn client_host(&self) -> String {
        self.peer
            .map(|p| format!("/{}", p.ip()))
            .unwrap_or_default()
    }
}

/// An API the broker serves and the versions it advertises.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiSupport {
    pub(crate) key: ApiKey,
    pub(crate) versions: VersionRange,
}

macro_rules! handlers {
    ($($variant:ident => $module:ident),* $(,)?) => {
        /// Every API served, in API key order.
        pub(crate) const REGISTRY: &[ApiSupport] = &[
            $(ApiSupport { key: ApiKey::$variant, versions: $module::VERSIONS },)*
        ];

        /// Runs the handler for a decoded request.
        pub(crate) async fn dispatch(ctx: &Ctx<'_>, request: RequestKind) -> ResponseKind {
            match request {
                $(RequestKind::$variant(r) => ResponseKind::$variant($module::handle(ctx, r).await),)*
                // Unreachable in practice: the connection checks the registry before decoding.
                other => unsupported(other),
            }
        }
    };
}

handlers! {
    Produce => produce,
    Fetch => fetch,
    ListOffsets => list_offsets,
    Metadata => metadata,
    OffsetCommit => offset_commit,
    OffsetFetch => offset_fetch,
    FindCoordinator => find_coordinator,
    JoinGroup => join_group,
    Heartbeat => heartbeat,
    LeaveGroup => leave_group,
    SyncGroup => sync_group,
    DescribeGroups => describe_groups,
    ListGroups => list_groups,
    SaslHandshake => sasl_handshake,
    ApiVersions => api_versions,
    CreateTopics => create_topics,
    DeleteTopics => delete_topics,
    DeleteRecords => delete_records,
    InitProducerId => init_producer_id,
    AddPartitionsToTxn => add_partitions_to_txn,
    AddOffsetsToTxn => add_offsets_to_txn,
    EndTxn => end_txn,
    TxnOffsetCommit => txn_offset_commit,
    DescribeAcls => describe_acls,
    CreateAcls => create_acls,
    DeleteAcls => delete_acls,
    DescribeConfigs => describe_configs,
    AlterConfigs => alter_configs,
    SaslAuthenticate => sasl_authenticate,
    CreatePartitions => create_partitions,
    DeleteGroups => delete_groups,
    IncrementalAlterConfigs => incremental_alter_configs,
    OffsetDelete => offset_delete,
    DescribeUserScramCredentials => describe_user_scram_credentials,
    AlterUserScramCredentials => alter_user_scram_credentials,
    DescribeCluster => describe_cluster,
    DescribeProducers => describe_producers,
    DescribeTransactions => describe_transactions,
    ListTransactions => list_transactions,
}

/// The versions advertised for `key`, if the broker serves it.
pub(crate) fn supported_versions(key: ApiKey) -> Option<VersionRange> {
    REGISTRY.iter().find(|a| a.key == key).map(|a| a.versions)
}

fn unsupported(request: RequestKind) -> ResponseKind {
    tracing::error!(
        ?request,
        "request for an API without a handler reached dispatch"
    );
    ResponseKind::ApiVersions(brook_protocol::api_versions::unsupported_version_response(
        api_versions::VERSIONS,
    ))
}

/// Names that occur more than once in a request (Kafka refuses each of them with
/// INVALID_REQUEST rather than acting on any).
pub(crate) fn duplicate_names<'a>(
    names: impl Iterator<Item = &'a str>,
) -> std::collections::HashSet<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.filter(|n| !seen.insert(*n)).collect()
}

/// Kafka's answer to a fenced producer for a request of `version`: PRODUCER_FENCED from the
/// version that introduced it (`fenced_from`), INVALID_PRODUCER_EPOCH before.
pub(crate) fn fencing_error(
    code: brook_protocol::ErrorCode,
    version: i16,
    fenced_from: i16,
) -> brook_protocol::ErrorCode {
    use brook_protocol::ErrorCode;
    match code {
        ErrorCode::ProducerFenced if version < fenced_from => ErrorCode::InvalidProducerEpoch,
        other => other,
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_sorted_unique_and_within_codec_ranges() {
        for pair in REGISTRY.windows(2) {
            assert!((pair[0].key as i16) < (pair[1].key as i16));
        }
        for api in REGISTRY {
            assert!(api.versions.min <= api.versions.max, "{:?}", api.key);
            // Produce v0-2 are advertised but answered by the legacy path, not the codec.
            if api.key != ApiKey::Produce {
                let codec = api.key.valid_versions();
                assert!(
                    codec.min <= api.versions.min && api.versions.max <= codec.max,
                    "{:?}",
                    api.key
                );
            }
        }
    }
}
