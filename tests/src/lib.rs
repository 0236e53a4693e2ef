//! Ferry test harness.
