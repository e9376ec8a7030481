//! Integration tests: simulate (being written).
