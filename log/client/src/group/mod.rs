//! The client side of consumer groups: the consumer protocol encoding,
//! the assignors the leader runs, and the membership loop (join, sync,
//! heartbeats) a subscribed consumer drives from `poll`.

mod assignor;
mod copartitioned;
mod membership;

pub use assignor::Assignor;
pub use membership::{GroupSettings, Membership, RebalanceListener, Rebalanced, RejoinHandle};
pub use spool_protocol::consumer_protocol::{Assignment, Subscription};
