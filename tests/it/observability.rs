//! Integration tests: observability (being written).
