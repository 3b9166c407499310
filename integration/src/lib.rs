//! Integration fixtures.
