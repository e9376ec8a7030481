//! Integration tests: poll (being written).
