//! ApiVersions (key 18): the versions of every API this broker serves, from the registry.
//!
//! Requests at versions above the range are answered by the connection with the KIP-511
//! fallback before they get here.

use brook_protocol::api_versions::is_valid_client_software_field;
use brook_protocol::kafka_protocol::messages::api_versions_response::ApiVersion;
use brook_protocol::kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;

use super::{Ctx, REGISTRY};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: ApiVersionsRequest) -> ApiVersionsResponse {
    if ctx.version() >= 3
        && !(is_valid_client_software_field(&req.client_software_name)
            && is_valid_client_software_field(&req.client_software_version))
    {
        return ApiVersionsResponse::default().with_error_code(ErrorCode::InvalidRequest.code());
    }
    ApiVersionsResponse::default().with_api_keys(
        REGISTRY
            .iter()
            .map(|api| {
                ApiVersion::default()
                    .with_api_key(api.key as i16)
                    .with_min_version(api.versions.min)
                    .with_max_version(api.versions.max)
            })
            .collect(),
    )
}
