//! An in-process network for cluster tests: every node's [`RaftRouter`]
//! in one map, and links that can be cut, made lossy or slow while the
//! cluster runs.
//!
//! Messages are encoded and decoded on the way, exactly as the gRPC
//! transport does, so tests exercise the wire format too. A fault is
//! decided per message: a cut link or a stopped node refuses it, a lossy
//! link may drop the request or (after the target handled it) the reply,
//! and a slow link delays it. Cutting a link while a message is in flight
//! loses its reply.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};

use super::network::{
    decode, encode, RaftReply, RaftRequest, RaftRouter, RaftTransport, TransportError,
};
use super::NodeId;

/// The network of an in-process cluster.
#[derive(Default)]
pub struct InProcessNetwork {
    nodes: RwLock<HashMap<NodeId, Arc<RaftRouter>>>,
    faults: Mutex<Faults>,
}

#[derive(Default)]
struct Faults {
    /// Directed links that carry nothing.
    cut: HashSet<(NodeId, NodeId)>,
    /// Chance, in percent, that a request or a reply is lost.
    loss_percent: u64,
    /// Every message waits between these two durations.
    delay: Option<(Duration, Duration)>,
    /// xorshift state: faults are pseudo-random but repeatable per seed.
    random: u64,
}

impl Faults {
    fn next_random(&mut self) -> u64 {
        let mut x = self.random.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        x
    }

    fn lost(&mut self) -> bool {
        self.loss_percent > 0 && self.next_random() % 100 < self.loss_percent
    }

    fn delay(&mut self) -> Duration {
        match self.delay {
            None => Duration::ZERO,
            Some((min, max)) => {
                let spread = (max - min).as_micros() as u64;
                min + Duration::from_micros(self.next_random() % spread.max(1))
            }
        }
    }
}

impl InProcessNetwork {
    /// A network with no faults; `seed` makes its random faults repeatable.
    pub fn new(seed: u64) -> Arc<InProcessNetwork> {
        let network = InProcessNetwork::default();
        network.faults.lock().random = seed;
        Arc::new(network)
    }

    /// Makes `router` reachable as node `node` (a started or restarted node).
    pub fn add_node(&self, node: NodeId, router: Arc<RaftRouter>) {
        self.nodes.write().insert(node, router);
    }

    /// Makes node `node` unreachable, as a crashed process is.
    pub fn remove_node(&self, node: NodeId) {
        self.nodes.write().remove(&node);
    }

    /// The transport node `from` sends with.
    pub fn transport(self: &Arc<Self>, from: NodeId) -> Arc<dyn RaftTransport> {
        Arc::new(NodeTransport {
            from,
            network: Arc::clone(self),
        })
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        let mut faults = self.faults.lock();
        faults.cut.insert((a, b));
        faults.cut.insert((b, a));
    }

    /// Cuts every link of `node`: it runs on, but alone.
    pub fn isolate(&self, node: NodeId) {
        let others: Vec<NodeId> = self
            .nodes
            .read()
            .keys()
            .copied()
            .filter(|&n| n != node)
            .collect();
        for other in others {
            self.cut(node, other);
        }
    }

    /// Restores every cut link.
    pub fn heal(&self) {
        self.faults.lock().cut.clear();
    }

    /// Loses each request and each reply with this chance (0 to 100).
    pub fn set_loss_percent(&self, percent: u64) {
        self.faults.lock().loss_percent = percent.min(100);
    }

    /// Delays every message by a duration between `min` and `max`; `None`
    /// delivers at once.
    pub fn set_delay(&self, delay: Option<(Duration, Duration)>) {
        self.faults.lock().delay = delay;
    }

    fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.faults.lock().cut.contains(&(from, to))
    }

    async fn deliver(
        &self,
        from: NodeId,
        target: NodeId,
        group: Arc<str>,
        request: RaftRequest,
    ) -> Result<RaftReply, TransportError> {
        let unreachable = |why: &str| TransportError::Unreachable(target, why.to_string());
        let (delay, request_lost, reply_lost) = {
            let mut faults = self.faults.lock();
            (faults.delay(), faults.lost(), faults.lost())
        };
        if self.is_cut(from, target) {
            return Err(unreachable("link cut"));
        }
        tokio::time::sleep(delay).await;
        if request_lost {
            return Err(unreachable("request lost"));
        }
        let router = self
            .nodes
            .read()
            .get(&target)
            .cloned()
            .ok_or_else(|| unreachable("node stopped"))?;
        let failed = |e: crate::ReplicationError| TransportError::Failed(e.to_string());
        let request: RaftRequest = decode(&encode(&request).map_err(failed)?).map_err(failed)?;
        let reply = router.handle(target, &group, request).await?;
        let reply: RaftReply = decode(&encode(&reply).map_err(failed)?).map_err(failed)?;
        if reply_lost || self.is_cut(target, from) {
            return Err(unreachable("reply lost"));
        }
        Ok(reply)
    }
}

struct NodeTransport {
    from: NodeId,
    network: Arc<InProcessNetwork>,
}

impl RaftTransport for NodeTransport {
    fn send(
        &self,
        target: NodeId,
        group: Arc<str>,
        request: RaftRequest,
    ) -> BoxFuture<'static, Result<RaftReply, TransportError>> {
        let network = Arc::clone(&self.network);
        let from = self.from;
        Box::pin(async move { network.deliver(from, target, group, request).await })
    }
}
