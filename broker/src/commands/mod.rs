//! The `brook` subcommands other than serving (the binary's own modules, not the library's):
//! each submodule is one command group and does its work through the library.

pub(crate) mod acl;
pub(crate) mod cluster;
pub(crate) mod connect;
pub(crate) mod consume;
pub(crate) mod group;
pub(crate) mod mirror;
pub(crate) mod produce;
pub(crate) mod schemas;
pub(crate) mod tls;
pub(crate) mod topic;
pub(crate) mod user;
