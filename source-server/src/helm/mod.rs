//! Helm chart repositories.

pub mod constraint;
pub mod index;
pub mod fetch;
pub mod chart;
