//! Compiled nodes: what one task runs. A node owns its typed downstream,
//! so a record goes from node to node by one virtual call, with no `Any`
//! and no downcast; the builder's generic types end here.

use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Instantiation, TaskContext};
use crate::record::{Header, Record};
use crate::Result;

/// A compiled node that takes records of type `(K, V)`.
pub(crate) trait Downstream<K, V>: Send {
    /// Processes one record: transforms it and forwards what comes of it to
    /// the node's children, or writes it out (a sink). An error stops the
    /// task (the runtime's handlers decide what happens next).
    fn process(&mut self, ctx: &mut TaskContext, record: Record<K, V>) -> Result<()>;
}

/// Builds one task's instance of a node, with everything below it.
pub(crate) type Factory<K, V> =
    Arc<dyn Fn(&mut Instantiation) -> Box<dyn Downstream<K, V>> + Send + Sync>;

/// The children of a stream: added to while the program builds its
/// topology, read each time a task compiles it.
pub(crate) struct Children<K, V>(Arc<Mutex<Vec<Factory<K, V>>>>);

impl<K, V> Clone for Children<K, V> {
    fn clone(&self) -> Self {
        Children(Arc::clone(&self.0))
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Children<K, V> {
    pub(crate) fn new() -> Children<K, V> {
        Children(Arc::new(Mutex::new(Vec::new())))
    }

    pub(crate) fn add(&self, factory: Factory<K, V>) {
        self.0.lock().push(factory);
    }

    /// One task's instances of every child.
    pub(crate) fn instantiate(&self, task: &mut Instantiation) -> Fanout<K, V> {
        let factories: Vec<Factory<K, V>> = self.0.lock().clone();
        Fanout {
            children: factories.iter().map(|factory| factory(task)).collect(),
        }
    }

    /// One task's instances of every child, the same for every parent
    /// that asks in this task (the two streams of a merge, the topics of
    /// one source): a node below runs once per task, whichever way a
    /// record arrives, so a processor keeps one state and one schedule.
    pub(crate) fn instantiate_shared(&self, task: &mut Instantiation) -> SharedFanout<K, V> {
        let identity = Arc::as_ptr(&self.0) as usize;
        let existing = task
            .shared
            .get(&identity)
            .and_then(|made| made.downcast_ref::<SharedFanout<K, V>>());
        if let Some(fanout) = existing {
            return Arc::clone(fanout);
        }
        let fanout = Arc::new(Mutex::new(self.instantiate(task)));
        task.shared.insert(identity, Box::new(Arc::clone(&fanout)));
        fanout
    }
}

/// Children shared by several parents in one task. A record holds the
/// lock only while it runs below; the graph has no cycles, so no node
/// waits for a lock its own record holds.
pub(crate) type SharedFanout<K, V> = Arc<Mutex<Fanout<K, V>>>;

/// A node's instantiated children: each gets every record, the last one
/// the record itself and the others a clone (no clone for one child).
pub(crate) struct Fanout<K, V> {
    children: Vec<Box<dyn Downstream<K, V>>>,
}

impl<K: Clone, V: Clone> Fanout<K, V> {
    pub(crate) fn forward(&mut self, ctx: &mut TaskContext, record: Record<K, V>) -> Result<()> {
        let Some((last, others)) = self.children.split_last_mut() else {
            return Ok(());
        };
        for child in others {
            child.process(ctx, record.clone())?;
        }
        last.process(ctx, record)
    }
}

/// A node made of a closure.
struct Step<K, V, F> {
    run: F,
    types: PhantomData<fn(K, V)>,
}

impl<K, V, F> Downstream<K, V> for Step<K, V, F>
where
    F: FnMut(&mut TaskContext, Record<K, V>) -> Result<()> + Send,
{
    fn process(&mut self, ctx: &mut TaskContext, record: Record<K, V>) -> Result<()> {
        (self.run)(ctx, record)
    }
}

/// A node that runs `run` on each record.
pub(crate) fn step<K: 'static, V: 'static>(
    run: impl FnMut(&mut TaskContext, Record<K, V>) -> Result<()> + Send + 'static,
) -> Box<dyn Downstream<K, V>> {
    Box::new(Step {
        run,
        types: PhantomData,
    })
}

/// A record as it arrives from a topic, before its source decodes it.
#[derive(Clone, Copy)]
pub struct RawRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
    pub headers: &'a [Header],
}

/// A compiled source: decodes raw records and forwards them.
pub(crate) trait SourceEntry: Send {
    fn process_raw(&mut self, ctx: &mut TaskContext, raw: RawRecord<'_>) -> Result<()>;
}

/// Builds one task's instance of a source, with everything below it.
pub(crate) type SourceFactory =
    Arc<dyn Fn(&mut Instantiation) -> Box<dyn SourceEntry> + Send + Sync>;

/// A schedule of one processor in one task (see `crate::processor`).
pub(crate) trait Punctuate: Send {
    /// Fires the schedule if its time has come (`stream_time` is
    /// `i64::MIN` before the task's first record).
    fn fire(&mut self, ctx: &mut TaskContext, stream_time: i64, wall_clock: i64) -> Result<()>;
}

/// Every schedule of one task.
pub(crate) type Punctuators = Vec<Box<dyn Punctuate>>;
