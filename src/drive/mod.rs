//! What drives runs: scenario files, the run of one seed, sweeps and their summaries,
//! shrinking, the guarantee matrix, the explorer and the seed claims.

pub mod analyze;
pub mod claims;
pub mod explore;
pub mod guarantees;
pub mod matrix;
pub mod runner;
pub mod shrink;
pub mod summary;
pub mod sweep;
