//! The gateway's system tests: real gateways, stores, connections and processes. One test
//! binary (one link, not fourteen), one module per concern; run one concern with
//! `cargo test -p tfc-gateway --test system <module>::`.

mod architecture;
mod audit;
mod common;
mod corpus;
mod daemon;
mod demo;
mod faults;
mod field_network;
mod governance;
mod handshake;
mod inbox;
mod need_to_know;
mod operators;
mod references;
mod robustness;
mod scenarios;
mod siem;
mod spaces;
mod threats;
