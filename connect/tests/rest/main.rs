//! The REST API over real HTTP: a worker on an embedded broker serves it
//! on 127.0.0.1:0, and every path is called as Kafka Connect's users call
//! it, errors included (404, 400, 405, 409 and 401 with Kafka's JSON
//! body). File connectors in temporary directories show that each call
//! did what it says: the exact lines that reach a topic or a file after a
//! pause, a stop, a restart, a config change or an offsets change.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod connectors;
mod errors;
mod lifecycle;
mod offsets;
mod plugins;
mod rebalance;
