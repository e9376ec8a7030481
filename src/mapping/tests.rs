//! Unit tests of the mapping, one behaviour each.
