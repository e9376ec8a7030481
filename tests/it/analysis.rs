//! Integration tests: analysis (being written).
