//! Ferry source server.

pub mod artifact;
pub mod git;
