//! Access control lists with Kafka's model, and the authorizer that checks them.
//!
//! An ACL binds a resource pattern (type, name, LITERAL or PREFIXED) to an entry (principal,
//! host, operation, ALLOW or DENY). A request's operation on a resource is allowed when:
//! the principal is a super user; or no DENY entry matches and an ALLOW entry does (an ALLOW
//! of READ, WRITE, DELETE or ALTER implies DESCRIBE, one of ALTER_CONFIGS implies
//! DESCRIBE_CONFIGS, ALL implies everything); or no ACL at all names the resource and
//! `allow.everyone.if.no.acl.found` is set. Patterns match as Kafka's do: a LITERAL name
//! equal to the resource's or `*`, a PREFIXED name the resource's name starts with;
//! principals `User:*` and hosts `*` match any.
//!
//! [`AclSet::authorize`] is that rule as a pure function over the set; [`Authorizer`] adds
//! the settings (`authorizer.class.name`, `super.users`) and keeps the set durable in
//! `acls.json` in the data directory (replaced atomically before a change is answered).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::files::Files;

/// The data directory's ACL file.
pub(crate) const FILE: &str = "acls.json";

/// The only name of the CLUSTER resource (Kafka's).
pub const CLUSTER_NAME: &str = "kafka-cluster";

macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($variant = $code,)*
        }

        impl $name {
            /// The wire code.
            pub fn code(self) -> i8 {
                self as i8
            }

            /// The value of a wire code, if it names one.
            pub fn from_code(code: i8) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// Kafka's name (`TOPIC`, `PREFIXED`, `DESCRIBE_CONFIGS`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// The value named `text` (any case, `-` or `_`).
            pub fn from_name(text: &str) -> Option<Self> {
                let wanted = text.trim().to_ascii_uppercase().replace('-', "_");
                match wanted.as_str() {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }

        // Stored by name in acls.json, so the file reads like Kafka's tools print ACLs.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::from_name(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("{text:?} is not a {}", stringify!($name)))
                })
            }
        }
    };
}

kafka_enum! {
    /// Kafka's resource types.
    ResourceType {
        Any = 1 => "ANY",
        Topic = 2 => "TOPIC",
        Group = 3 => "GROUP",
        Cluster = 4 => "CLUSTER",
        TransactionalId = 5 => "TRANSACTIONAL_ID",
        DelegationToken = 6 => "DELEGATION_TOKEN",
        User = 7 => "USER",
    }
}

kafka_enum! {
    /// Kafka's pattern types (bindings are LITERAL or PREFIXED; filters may be any).
    PatternType {
        Any = 1 => "ANY",
        Match = 2 => "MATCH",
        Literal = 3 => "LITERAL",
        Prefixed = 4 => "PREFIXED",
    }
}

kafka_enum! {
    /// Kafka's ACL operations.
    Operation {
        Any = 1 => "ANY",
        All = 2 => "ALL",
        Read = 3 => "READ",
        Write = 4 => "WRITE",
        Create = 5 => "CREATE",
        Delete = 6 => "DELETE",
        Alter = 7 => "ALTER",
        Describe = 8 => "DESCRIBE",
        ClusterAction = 9 => "CLUSTER_ACTION",
        DescribeConfigs = 10 => "DESCRIBE_CONFIGS",
        AlterConfigs = 11 => "ALTER_CONFIGS",
        IdempotentWrite = 12 => "IDEMPOTENT_WRITE",
        CreateTokens = 13 => "CREATE_TOKENS",
        DescribeTokens = 14 => "DESCRIBE_TOKENS",
    }
}

kafka_enum! {
    /// ALLOW or DENY (ANY only in filters).
    Permission {
        Any = 1 => "ANY",
        Deny = 2 => "DENY",
        Allow = 3 => "ALLOW",
    }
}

/// The operations a resource type supports (what "authorized operations" fields list).
pub fn supported_operations(resource: ResourceType) -> &'static [Operation] {
    use Operation::*;
    match resource {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Delete,
            Alter,
            Describe,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        ResourceType::DelegationToken => &[Describe],
        ResourceType::User => &[CreateTokens, DescribeTokens],
        ResourceType::Any => &[],
    }
}

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Checks a binding to be created as Kafka's CreateAcls does; the reason if refused.
    pub fn validate(&self) -> Result<(), String> {
        if matches!(self.resource_type, ResourceType::Any) {
            return Err("Invalid resource type ANY: an ACL names one resource type".into());
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(format!(
                "Invalid pattern type {}: an ACL's pattern is LITERAL or PREFIXED",
                self.pattern_type.name()
            ));
        }
        if self.resource_name.is_empty() {
            return Err("The resource name must not be empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return Err(format!(
                    "Invalid principal {:?}: principals are Type:name, e.g. User:alice",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return Err("The host must not be empty (use * for any host)".into());
        }
        if matches!(self.operation, Operation::Any) {
            return Err("Invalid operation ANY".into());
        }
        if matches!(self.permission, Permission::Any) {
            return Err("Invalid permission type ANY".into());
        }
        Ok(())
    }

    /// Whether this binding's pattern covers `name` (of its resource type).
    fn covers(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => self.resource_name == name || self.resource_name == "*",
            PatternType::Prefixed => name.starts_with(&self.resource_name),
            _ => false,
        }
    }
}

/// What DescribeAcls and DeleteAcls select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    /// `None`: any name.
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    /// Whether `b` is selected. With MATCH, a named filter selects the bindings that would
    /// apply to that resource (equal literal names, `*`, and prefixes of the name).
    pub fn matches(&self, b: &AclBinding) -> bool {
        let resource = (self.resource_type == ResourceType::Any
            || self.resource_type == b.resource_type)
            && match (&self.resource_name, self.pattern_type) {
                (None, PatternType::Any | PatternType::Match) => true,
                (None, pattern) => b.pattern_type == pattern,
                (Some(name), PatternType::Any) => &b.resource_name == name,
                (Some(name), PatternType::Match) => b.covers(name),
                (Some(name), pattern) => b.pattern_type == pattern && &b.resource_name == name,
            };
        resource
            && self.principal.as_ref().is_none_or(|p| p == &b.principal)
            && self.host.as_ref().is_none_or(|h| h == &b.host)
            && (self.operation == Operation::Any || self.operation == b.operation)
            && (self.permission == Permission::Any || self.permission == b.permission)
    }
}

/// A set of ACLs, indexed for [`AclSet::authorize`].
#[derive(Debug, Default, Clone)]
pub struct AclSet {
    bindings: Vec<AclBinding>,
    /// Positions of LITERAL bindings by type and name, `*` included (looked up by `&str`,
    /// so a check allocates nothing).
    literal: HashMap<ResourceType, HashMap<String, Vec<usize>>>,
    /// Positions of PREFIXED bindings by type.
    prefixed: HashMap<ResourceType, Vec<usize>>,
}

impl AclSet {
    pub fn new(bindings: Vec<AclBinding>) -> Self {
        let mut set = Self::default();
        for b in bindings {
            set.insert(b);
        }
        set
    }

    /// Adds `binding` unless it is there already; false if it was.
    pub fn insert(&mut self, binding: AclBinding) -> bool {
        if self.bindings.contains(&binding) {
            return false;
        }
        let at = self.bindings.len();
        match binding.pattern_type {
            PatternType::Prefixed => self
                .prefixed
                .entry(binding.resource_type)
                .or_default()
                .push(at),
            _ => self
                .literal
                .entry(binding.resource_type)
                .or_default()
                .entry(binding.resource_name.clone())
                .or_default()
                .push(at),
        }
        self.bindings.push(binding);
        true
    }

    pub fn bindings(&self) -> &[AclBinding] {
        &self.bindings
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// The bindings whose pattern covers the resource.
    fn covering<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclBinding> + 'a {
        let literal = self.literal.get(&resource_type);
        let exact = literal.and_then(|by_name| by_name.get(name));
        let wildcard = (name != "*")
            .then(|| literal.and_then(|by_name| by_name.get("*")))
            .flatten();
        let prefixed = self.prefixed.get(&resource_type);
        exact
            .into_iter()
            .chain(wildcard)
            .flatten()
            .map(|&i| &self.bindings[i])
            .chain(
                prefixed
                    .into_iter()
                    .flatten()
                    .map(|&i| &self.bindings[i])
                    .filter(move |b| b.covers(name)),
            )
    }

    /// Kafka's decision for `principal` (`User:alice`) at `host` doing `operation` on the
    /// resource, given `allow_if_no_acl` (`allow.everyone.if.no.acl.found`). Super users
    /// are the caller's business.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
        allow_if_no_acl: bool,
    ) -> bool {
        let mut any = false;
        let mut allowed = false;
        for b in self.covering(resource_type, name) {
            any = true;
            let applies = (b.principal == principal || b.principal == "User:*")
                && (b.host == host || b.host == "*");
            if !applies {
                continue;
            }
            match b.permission {
                Permission::Deny if b.operation == operation || b.operation == Operation::All => {
                    return false
                }
                Permission::Allow if implies(b.operation, operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any && allow_if_no_acl)
    }

    /// Whether some resource of `resource_type` allows `operation` (Kafka's
    /// authorizeByResourceType, used where any topic's WRITE permits idempotent writes): an
    /// ALLOW binding for the principal that no DENY binding of the principal covers.
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        let applies = |b: &&AclBinding| {
            b.resource_type == resource_type
                && (b.principal == principal || b.principal == "User:*")
                && (b.host == host || b.host == "*")
        };
        let denies: Vec<&AclBinding> = self
            .bindings
            .iter()
            .filter(applies)
            .filter(|b| {
                b.permission == Permission::Deny
                    && (b.operation == operation || b.operation == Operation::All)
            })
            .collect();
        self.bindings
            .iter()
            .filter(applies)
            .filter(|b| b.permission == Permission::Allow && implies(b.operation, operation))
            .any(|allow| {
                !denies.iter().any(|deny| match deny.pattern_type {
                    PatternType::Literal if deny.resource_name == "*" => true,
                    PatternType::Literal => {
                        allow.pattern_type == PatternType::Literal
                            && allow.resource_name == deny.resource_name
                    }
                    PatternType::Prefixed => allow.resource_name.starts_with(&deny.resource_name),
                    _ => false,
                })
            })
    }
}

/// Whether an ALLOW of `granted` permits `wanted`.
fn implies(granted: Operation, wanted: Operation) -> bool {
    use Operation::*;
    granted == wanted
        || granted == All
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AclFile {
    acls: Vec<AclBinding>,
}

/// The broker's authorizer: on when `authorizer.class.name` is set.
pub(crate) struct Authorizer {
    enabled: bool,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
    acls: RwLock<AclSet>,
    path: PathBuf,
    files: Files,
    /// Serialises changes and their file writes.
    changes: Mutex<()>,
}

impl Authorizer {
    /// Reads `acls.json` (none if missing). `super_users` are principals (`User:admin`).
    pub(crate) fn open(
        data_dir: &Path,
        files: Files,
        enabled: bool,
        super_users: Vec<String>,
        allow_if_no_acl: bool,
    ) -> std::io::Result<Self> {
        let path = data_dir.join(FILE);
        let file: AclFile = match files.read(&path)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
            None => AclFile::default(),
        };
        Ok(Self {
            enabled,
            super_users,
            allow_if_no_acl,
            acls: RwLock::new(AclSet::new(file.acls)),
            path,
            files,
            changes: Mutex::new(()),
        })
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `principal` at `host` may do `operation` on the resource.
    pub(crate) fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled || self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        self.acls.read().authorize(
            principal,
            host,
            operation,
            resource_type,
            name,
            self.allow_if_no_acl,
        )
    }

    /// Kafka's authorizeByResourceType (see [`AclSet::authorize_any`]).
    pub(crate) fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.enabled || self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let acls = self.acls.read();
        acls.authorize_any(principal, host, operation, resource_type)
            || (self.allow_if_no_acl && acls.is_empty())
    }

    /// The bindings `filter` selects.
    pub(crate) fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.acls
            .read()
            .bindings()
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// Adds `bindings` (already validated) and writes the file before returning.
    pub(crate) fn create(&self, bindings: Vec<AclBinding>) -> std::io::Result<()> {
        let _change = self.changes.lock();
        let mut next = self.acls.read().clone();
        for b in bindings {
            next.insert(b);
        }
        self.write(&next)?;
        *self.acls.write() = next;
        Ok(())
    }

    /// Removes what each filter selects; per filter, the bindings it removed.
    pub(crate) fn delete(&self, filters: &[AclFilter]) -> std::io::Result<Vec<Vec<AclBinding>>> {
        let _change = self.changes.lock();
        let current = self.acls.read().clone();
        let removed: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| {
                current
                    .bindings()
                    .iter()
                    .filter(|b| f.matches(b))
                    .cloned()
                    .collect()
            })
            .collect();
        if removed.iter().any(|r| !r.is_empty()) {
            let kept: Vec<AclBinding> = current
                .bindings()
                .iter()
                .filter(|b| !filters.iter().any(|f| f.matches(b)))
                .cloned()
                .collect();
            let next = AclSet::new(kept);
            self.write(&next)?;
            *self.acls.write() = next;
        }
        Ok(removed)
    }

    fn write(&self, set: &AclSet) -> std::io::Result<()> {
        let file = AclFile {
            acls: set.bindings().to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        self.files.write_atomically(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::*;
    use Permission::*;
    use ResourceType::*;

    fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        host: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: host.into(),
            operation,
            permission,
        }
    }

    fn allow(rt: ResourceType, name: &str, principal: &str, op: Operation) -> AclBinding {
        acl(rt, name, PatternType::Literal, principal, "*", op, Allow)
    }

    const ALICE: &str = "User:alice";
    const BOB: &str = "User:bob";

    /// Every operation on every resource type, for both principals, against `set`:
    /// what `expected` says, and nothing else.
    fn check_all(set: &AclSet, expected: &dyn Fn(&str, Operation, ResourceType, &str) -> bool) {
        let ops = [
            All,
            Read,
            Write,
            Create,
            Delete,
            Alter,
            Describe,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
        ];
        for principal in [ALICE, BOB] {
            for rt in [Topic, Group, Cluster, TransactionalId] {
                for name in ["orders", "orders-eu", "payments", "kafka-cluster"] {
                    for op in ops {
                        let got = set.authorize(principal, "10.0.0.1", op, rt, name, false);
                        let want = expected(principal, op, rt, name);
                        assert_eq!(got, want, "{principal} {op:?} {rt:?} {name}");
                    }
                }
            }
        }
    }

    #[test]
    fn no_acl_denies_everything_unless_allow_everyone_if_no_acl_found() {
        let set = AclSet::default();
        check_all(&set, &|_, _, _, _| false);
        assert!(set.authorize(ALICE, "h", Read, Topic, "t", true));
        // An ACL on the resource (for someone else) takes the no-ACL allowance away.
        let set = AclSet::new(vec![allow(Topic, "t", BOB, Read)]);
        assert!(!set.authorize(ALICE, "h", Read, Topic, "t", true));
        assert!(set.authorize(ALICE, "h", Read, Topic, "other", true));
    }

    #[test]
    fn literal_allow_grants_its_operation_and_the_implied_describe() {
        let set = AclSet::new(vec![allow(Topic, "orders", ALICE, Write)]);
        check_all(&set, &|p, op, rt, name| {
            p == ALICE && rt == Topic && name == "orders" && matches!(op, Write | Describe)
        });
        let set = AclSet::new(vec![allow(Cluster, CLUSTER_NAME, ALICE, AlterConfigs)]);
        check_all(&set, &|p, op, rt, name| {
            p == ALICE
                && rt == Cluster
                && name == CLUSTER_NAME
                && matches!(op, AlterConfigs | DescribeConfigs)
        });
        let set = AclSet::new(vec![allow(Group, "orders", ALICE, All)]);
        check_all(&set, &|p, _, rt, name| {
            p == ALICE && rt == Group && name == "orders"
        });
    }

    #[test]
    fn wildcards_and_prefixes_match_as_kafkas() {
        let set = AclSet::new(vec![
            allow(Topic, "*", "User:*", Read),
            acl(
                Topic,
                "orders",
                PatternType::Prefixed,
                ALICE,
                "*",
                Write,
                Allow,
            ),
        ]);
        check_all(&set, &|p, op, rt, name| {
            rt == Topic
                && (matches!(op, Read | Describe)
                    || (p == ALICE && op == Write && name.starts_with("orders")))
        });
    }

    #[test]
    fn deny_wins_over_allow_and_hosts_must_match() {
        let set = AclSet::new(vec![
            allow(Topic, "*", ALICE, All),
            acl(Topic, "pay", PatternType::Prefixed, ALICE, "*", Write, Deny),
            acl(
                Topic,
                "orders",
                PatternType::Literal,
                ALICE,
                "10.0.0.1",
                Delete,
                Deny,
            ),
        ]);
        check_all(&set, &|p, op, rt, name| {
            p == ALICE
                && rt == Topic
                && !(name.starts_with("pay") && matches!(op, Write))
                && !(name == "orders" && op == Delete)
        });
        // The DENY of DELETE is for one host: another host may delete.
        assert!(set.authorize(ALICE, "10.0.0.2", Delete, Topic, "orders", false));
        // DENY ALL denies every operation, DESCRIBE included.
        let set = AclSet::new(vec![
            allow(Group, "g", ALICE, Read),
            acl(Group, "g", PatternType::Literal, ALICE, "*", All, Deny),
        ]);
        assert!(!set.authorize(ALICE, "h", Describe, Group, "g", false));
        assert!(!set.authorize(ALICE, "h", Read, Group, "g", false));
    }

    #[test]
    fn authorize_any_finds_a_permitted_resource_not_denied() {
        let set = AclSet::new(vec![allow(Topic, "orders", ALICE, Write)]);
        assert!(set.authorize_any(ALICE, "h", Write, Topic));
        assert!(!set.authorize_any(BOB, "h", Write, Topic));
        assert!(!set.authorize_any(ALICE, "h", Write, Group));
        let set = AclSet::new(vec![
            allow(Topic, "orders", ALICE, Write),
            acl(Topic, "ord", PatternType::Prefixed, ALICE, "*", Write, Deny),
        ]);
        assert!(!set.authorize_any(ALICE, "h", Write, Topic));
    }

    #[test]
    fn filters_select_as_describe_and_delete_acls_do() {
        let a = allow(Topic, "orders", ALICE, Read);
        let b = acl(Topic, "ord", PatternType::Prefixed, BOB, "*", Write, Allow);
        let c = allow(Topic, "*", BOB, Describe);
        let d = allow(Group, "orders", ALICE, Read);
        let all = [&a, &b, &c, &d];
        let filter = |rt, name: Option<&str>, pattern| AclFilter {
            resource_type: rt,
            resource_name: name.map(Into::into),
            pattern_type: pattern,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        };
        let selected = |f: &AclFilter| -> Vec<&AclBinding> {
            all.iter().copied().filter(|x| f.matches(x)).collect()
        };
        assert_eq!(
            selected(&filter(ResourceType::Any, None, PatternType::Any)).len(),
            4
        );
        assert_eq!(
            selected(&filter(Topic, Some("orders"), PatternType::Match)),
            [&a, &b, &c]
        );
        assert_eq!(
            selected(&filter(Topic, Some("orders"), PatternType::Literal)),
            [&a]
        );
        assert_eq!(selected(&filter(Topic, None, PatternType::Prefixed)), [&b]);
        assert_eq!(
            selected(&filter(ResourceType::Any, Some("orders"), PatternType::Any)),
            [&a, &d]
        );
        let mut by_principal = filter(ResourceType::Any, None, PatternType::Any);
        by_principal.principal = Some(BOB.into());
        assert_eq!(selected(&by_principal), [&b, &c]);
    }

    #[test]
    fn bindings_are_validated_as_kafka_validates_them() {
        let good = allow(Topic, "t", ALICE, Read);
        assert!(good.validate().is_ok());
        let bad = [
            AclBinding {
                resource_type: ResourceType::Any,
                ..good.clone()
            },
            AclBinding {
                pattern_type: PatternType::Match,
                ..good.clone()
            },
            AclBinding {
                resource_type: Cluster,
                resource_name: "c".into(),
                ..good.clone()
            },
            AclBinding {
                principal: "alice".into(),
                ..good.clone()
            },
            AclBinding {
                operation: Operation::Any,
                ..good.clone()
            },
            AclBinding {
                permission: Permission::Any,
                ..good.clone()
            },
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b:?}");
        }
    }

    #[test]
    fn the_authorizer_keeps_acls_across_reopening_and_honours_super_users() {
        let dir = tempfile::tempdir().unwrap();
        let files = || Files::new(std::sync::Arc::new(brook_storage::OsFileSystem));
        let open = || {
            Authorizer::open(dir.path(), files(), true, vec!["User:admin".into()], false).unwrap()
        };
        let authorizer = open();
        assert!(authorizer.authorize("User:admin", "h", Delete, Topic, "t"));
        assert!(!authorizer.authorize(ALICE, "h", Read, Topic, "t"));
        authorizer
            .create(vec![
                allow(Topic, "t", ALICE, Read),
                allow(Group, "g", ALICE, Read),
            ])
            .unwrap();
        let reopened = open();
        assert!(reopened.authorize(ALICE, "h", Read, Topic, "t"));
        let removed = reopened
            .delete(&[AclFilter {
                resource_type: Group,
                resource_name: None,
                pattern_type: PatternType::Any,
                principal: None,
                host: None,
                operation: Operation::Any,
                permission: Permission::Any,
            }])
            .unwrap();
        assert_eq!(removed[0].len(), 1);
        let again = open();
        assert!(!again.authorize(ALICE, "h", Read, Group, "g"));
        assert!(again.authorize(ALICE, "h", Read, Topic, "t"));
        // Without authorizer.class.name everything is allowed.
        let off = Authorizer::open(dir.path(), files(), false, vec![], false).unwrap();
        assert!(off.authorize(BOB, "h", Delete, Cluster, CLUSTER_NAME));
    }
}
