//! Ferry source server.
