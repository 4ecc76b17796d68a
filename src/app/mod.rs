//! The applications that use the clients: the workload (producers and consumers that
//! record what they saw) and the consume-transform-produce pipelines.

mod group_events;
pub mod pipeline;
pub mod workload;
