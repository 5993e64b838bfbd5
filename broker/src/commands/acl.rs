//! `brook acl add|remove|list`: ACLs of a running broker, through CreateAcls, DeleteAcls and
//! DescribeAcls (as `kafka-acls.sh` uses them).

use brook_broker::auth::acl::{
    AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME,
};
use brook_protocol::kafka_protocol::messages::create_acls_request::AclCreation;
use brook_protocol::kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use brook_protocol::kafka_protocol::messages::{
    CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;

use super::connect::{response_error, send_one, BrokerArgs};

/// The resource an ACL command names (at most one).
#[derive(Debug, Clone, clap::Args)]
#[group(multiple = false)]
pub(crate) struct ResourceArgs {
    /// A topic (or topic prefix with --pattern prefixed; `*` for every topic)
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// A consumer group (or prefix)
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// A transactional id (or prefix)
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// The cluster
    #[arg(long)]
    cluster: bool,
}

impl ResourceArgs {
    fn resource(&self) -> Option<(ResourceType, String)> {
        if let Some(t) = &self.topic {
            Some((ResourceType::Topic, t.clone()))
        } else if let Some(g) = &self.group {
            Some((ResourceType::Group, g.clone()))
        } else if let Some(t) = &self.transactional_id {
            Some((ResourceType::TransactionalId, t.clone()))
        } else if self.cluster {
            Some((ResourceType::Cluster, CLUSTER_NAME.to_string()))
        } else {
            None
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AclCommand {
    /// Allow (or with --deny, deny) a principal operations on a resource
    Add {
        /// The principal, e.g. User:alice (User:* for everyone)
        #[arg(long)]
        principal: String,
        /// Operations: read, write, create, delete, alter, describe, describe-configs,
        /// alter-configs, idempotent-write, cluster-action, all (repeatable)
        #[arg(long = "operation", required = true)]
        operations: Vec<String>,
        #[command(flatten)]
        resource: ResourceArgs,
        /// literal (the name, or `*`) or prefixed
        #[arg(long, default_value = "literal")]
        pattern: String,
        /// The client host the ACL applies to (an IP address, or * for any)
        #[arg(long, default_value = "*")]
        host: String,
        /// Deny instead of allow
        #[arg(long)]
        deny: bool,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Remove the ACLs matching a filter (options left out match anything)
    Remove {
        #[arg(long)]
        principal: Option<String>,
        #[arg(long = "operation")]
        operation: Option<String>,
        #[command(flatten)]
        resource: ResourceArgs,
        /// any, match, literal or prefixed
        #[arg(long, default_value = "any")]
        pattern: String,
        #[arg(long)]
        host: Option<String>,
        /// allow, deny or any
        #[arg(long, default_value = "any")]
        permission: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// List ACLs (options left out match anything)
    List {
        #[arg(long)]
        principal: Option<String>,
        #[command(flatten)]
        resource: ResourceArgs,
        /// any, match (the ACLs that apply to the named resource), literal or prefixed
        #[arg(long, default_value = "any")]
        pattern: String,
        /// `table` or `json`
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        broker: BrokerArgs,
    },
}

fn parse<T>(what: &str, value: &str, f: fn(&str) -> Option<T>) -> Result<T, String> {
    f(value).ok_or_else(|| format!("--{what} {value:?} is not one Kafka knows"))
}

pub(crate) fn run(command: AclCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        AclCommand::Add {
            principal,
            operations,
            resource,
            pattern,
            host,
            deny,
            broker,
        } => {
            let (resource_type, name) = resource
                .resource()
                .ok_or("name the resource: --topic, --group, --transactional-id or --cluster")?;
            let pattern_type = parse("pattern", &pattern, PatternType::from_name)?;
            let mut bindings = Vec::new();
            for op in &operations {
                let binding = AclBinding {
                    resource_type,
                    resource_name: name.clone(),
                    pattern_type,
                    principal: principal.clone(),
                    host: host.clone(),
                    operation: parse("operation", op, Operation::from_name)?,
                    permission: if deny {
                        Permission::Deny
                    } else {
                        Permission::Allow
                    },
                };
                binding.validate()?;
                bindings.push(binding);
            }
            let creations = bindings
                .iter()
                .map(|b| {
                    AclCreation::default()
                        .with_resource_type(b.resource_type.code())
                        .with_resource_name(StrBytes::from_string(b.resource_name.clone()))
                        .with_resource_pattern_type(b.pattern_type.code())
                        .with_principal(StrBytes::from_string(b.principal.clone()))
                        .with_host(StrBytes::from_string(b.host.clone()))
                        .with_operation(b.operation.code())
                        .with_permission_type(b.permission.code())
                })
                .collect();
            let response = send_one(
                &broker,
                &CreateAclsRequest::default().with_creations(creations),
            )?;
            for (b, r) in bindings.iter().zip(&response.results) {
                if r.error_code != 0 {
                    return Err(format!(
                        "{}: {}",
                        describe(b),
                        r.error_message.as_deref().unwrap_or("refused")
                    )
                    .into());
                }
                println!("added: {}", describe(b));
            }
        }
        AclCommand::Remove {
            principal,
            operation,
            resource,
            pattern,
            host,
            permission,
            broker,
        } => {
            let filter = AclFilter {
                resource_type: resource.resource().map_or(ResourceType::Any, |r| r.0),
                resource_name: resource.resource().map(|r| r.1),
                pattern_type: parse("pattern", &pattern, PatternType::from_name)?,
                principal,
                host,
                operation: match &operation {
                    Some(op) => parse("operation", op, Operation::from_name)?,
                    None => Operation::Any,
                },
                permission: parse("permission", &permission, Permission::from_name)?,
            };
            let wire = DeleteAclsFilter::default()
                .with_resource_type_filter(filter.resource_type.code())
                .with_resource_name_filter(filter.resource_name.clone().map(StrBytes::from_string))
                .with_pattern_type_filter(filter.pattern_type.code())
                .with_principal_filter(filter.principal.clone().map(StrBytes::from_string))
                .with_host_filter(filter.host.clone().map(StrBytes::from_string))
                .with_operation(filter.operation.code())
                .with_permission_type(filter.permission.code());
            let response = send_one(
                &broker,
                &DeleteAclsRequest::default().with_filters(vec![wire]),
            )?;
            let result = response
                .filter_results
                .first()
                .ok_or("the broker answered no filter result")?;
            if result.error_code != 0 {
                return Err(result
                    .error_message
                    .as_deref()
                    .unwrap_or("refused")
                    .to_string()
                    .into());
            }
            println!("removed {} ACL(s)", result.matching_acls.len());
        }
        AclCommand::List {
            principal,
            resource,
            pattern,
            format,
            broker,
        } => {
            let request = DescribeAclsRequest::default()
                .with_resource_type_filter(
                    resource
                        .resource()
                        .map_or(ResourceType::Any, |r| r.0)
                        .code(),
                )
                .with_resource_name_filter(resource.resource().map(|r| StrBytes::from_string(r.1)))
                .with_pattern_type_filter(
                    parse("pattern", &pattern, PatternType::from_name)?.code(),
                )
                .with_principal_filter(principal.map(StrBytes::from_string))
                .with_host_filter(None)
                .with_operation(Operation::Any.code())
                .with_permission_type(Permission::Any.code());
            let response = send_one(&broker, &request)?;
            response_error(response.error_code, response.error_message.as_deref())?;
            let mut bindings = Vec::new();
            for r in &response.resources {
                for a in &r.acls {
                    let known = (
                        ResourceType::from_code(r.resource_type),
                        PatternType::from_code(r.pattern_type),
                        Operation::from_code(a.operation),
                        Permission::from_code(a.permission_type),
                    );
                    if let (Some(rt), Some(pt), Some(op), Some(perm)) = known {
                        bindings.push(AclBinding {
                            resource_type: rt,
                            resource_name: r.resource_name.to_string(),
                            pattern_type: pt,
                            principal: a.principal.to_string(),
                            host: a.host.to_string(),
                            operation: op,
                            permission: perm,
                        });
                    }
                }
            }
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string(&bindings)?),
                "table" => {
                    println!(
                        "{:<18} {:<24} {:<9} {:<20} {:<10} {:<17} PERMISSION",
                        "RESOURCE", "NAME", "PATTERN", "PRINCIPAL", "HOST", "OPERATION"
                    );
                    for b in &bindings {
                        println!(
                            "{:<18} {:<24} {:<9} {:<20} {:<10} {:<17} {}",
                            b.resource_type.name(),
                            b.resource_name,
                            b.pattern_type.name(),
                            b.principal,
                            b.host,
                            b.operation.name(),
                            b.permission.name()
                        );
                    }
                }
                other => return Err(format!("--format {other:?}: table or json").into()),
            }
        }
    }
    Ok(())
}

fn describe(b: &AclBinding) -> String {
    format!(
        "{} {} {} on {} {} ({}) from {}",
        b.permission.name(),
        b.principal,
        b.operation.name(),
        b.resource_type.name(),
        b.resource_name,
        b.pattern_type.name(),
        b.host
    )
}
