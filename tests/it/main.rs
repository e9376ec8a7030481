//! One integration-test binary (fewer link steps on a 2-core machine): every module below
//! drives the library or the built binary against servers started on 127.0.0.1:0.

mod analysis;
mod faults;
mod hostile_local;
mod hostile_slack;
mod http_sink;
mod mapping;
mod observability;
mod ops;
mod poll;
mod respond;
mod restart;
mod shippers;
mod simulate;
mod soak;
mod support;
mod web_api;
