//! Integration tests: restart (being written).
