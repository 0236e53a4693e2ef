//! Ferry applier agent.
