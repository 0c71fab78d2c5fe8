//! `KStream::split`: each record goes to the first branch whose predicate
//! holds, or to the default branch (Kafka Streams' `BranchedKStream`).

use std::sync::Arc;

use parking_lot::Mutex;

use super::KStream;
use crate::record::Record;
use crate::topology::node::{step, Children};
use crate::topology::NodeKind;

type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Each branch's predicate and what lies below it, in the order added.
type Branches<K, V> = Arc<Mutex<Vec<(Predicate<K, V>, Children<K, V>)>>>;

/// The branches of a split, added in order; the first that matches wins.
pub struct Split<K, V> {
    parent: KStream<K, V>,
    node: usize,
    branches: Branches<K, V>,
}

impl<K, V> Split<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    pub(super) fn new(parent: &KStream<K, V>) -> Split<K, V> {
        let node = parent
            .builder
            .add_node("BRANCH", NodeKind::processor(), &[parent.node]);
        let branches: Branches<K, V> = Arc::default();
        let all = Arc::clone(&branches);
        parent.children.add(Arc::new(move |task| {
            let mut instances: Vec<_> = all
                .lock()
                .iter()
                .map(|(matches, children)| (Arc::clone(matches), children.instantiate(task)))
                .collect();
            step(move |ctx, r: Record<K, V>| {
                match instances
                    .iter_mut()
                    .find(|(matches, _)| matches(&r.key, &r.value))
                {
                    Some((_, below)) => below.forward(ctx, r),
                    None => Ok(()),
                }
            })
        }));
        Split {
            parent: parent.same(),
            node,
            branches,
        }
    }

    /// A branch for the records `matches` holds for (and no earlier branch
    /// took); `with` builds what happens to them.
    pub fn branch(
        self,
        matches: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        with: impl FnOnce(KStream<K, V>),
    ) -> Split<K, V> {
        let stream = self.add_branch(Arc::new(matches));
        with(stream);
        self
    }

    /// The branch for the records no other branch took. Without one, they
    /// are dropped.
    pub fn default_branch(self, with: impl FnOnce(KStream<K, V>)) {
        let stream = self.add_branch(Arc::new(|_: &K, _: &V| true));
        with(stream);
    }

    fn add_branch(&self, matches: Predicate<K, V>) -> KStream<K, V> {
        let node = self
            .parent
            .builder
            .add_node("BRANCH", NodeKind::processor(), &[self.node]);
        let children = Children::new();
        self.branches.lock().push((matches, children.clone()));
        let mut stream = KStream::new(self.parent.builder.clone(), node, children);
        stream.key_changed = self.parent.key_changed;
        stream
    }
}
