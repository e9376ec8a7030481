//! Integration tests: http_sink (being written).
