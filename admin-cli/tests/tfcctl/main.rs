//! `tfcctl` end to end, in one test binary (one link, not seven): the real binary against
//! real files and real gateways. Run one concern with `cargo test -p tfc-admin --test
//! tfcctl <module>::`.

mod audit;
mod cli;
mod data;
mod field;
mod governance;
mod readme;
mod threat;
