//! Ferry applier agent.

pub mod fetch;
pub mod render;
pub mod source_client;
