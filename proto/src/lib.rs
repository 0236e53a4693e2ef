//! Ferry proto.
