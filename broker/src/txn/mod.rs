//! The transaction coordinator.

pub(crate) mod state;
pub(crate) mod store;
