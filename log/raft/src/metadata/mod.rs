//! Cluster metadata: which brokers exist, which topics, and which brokers
//! hold each partition's replicas.
//!
//! Metadata is itself a replicated log, as in Kafka's KRaft: the
//! controller group is a [`PartitionReplica`] of the `__cluster_metadata`
//! partition on every voter, each record one [`MetadataCommand`]. Every
//! broker folds the committed records, in offset order, into the same
//! [`ClusterImage`]; no broker holds metadata the log does not.
//!
//! - [`image`]: the commands and the image they build.
//! - [`assignment`]: placing replicas and preferred leaders evenly.
//! - [`controller`]: proposing commands through the controller group and
//!   keeping a broker's image current.
//!
//! [`PartitionReplica`]: crate::PartitionReplica

pub mod assignment;
pub mod controller;
pub mod image;

pub use assignment::{assign_replicas, Placement};
pub use controller::Controller;
pub use image::{ClusterImage, MetadataCommand, TopicAssignment};

/// The Raft group id of the controller.
pub const METADATA_GROUP: &str = "__cluster_metadata";
