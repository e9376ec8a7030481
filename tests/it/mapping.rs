//! Integration tests: mapping (being written).
