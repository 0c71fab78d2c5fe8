//! A processor compiled into a task: the node in the record path, and
//! its punctuation schedules, sharing the processor through one lock
//! (uncontended: a task runs on one thread at a time).

use std::sync::Arc;

use parking_lot::Mutex;

use super::{Processor, ProcessorContext, ProcessorInit, PunctuationType};
use crate::record::Record;
use crate::topology::node::{Downstream, Fanout, Punctuate};
use crate::topology::{Instantiation, TaskContext};
use crate::Result;

struct Compiled<P: Processor<K, V>, K, V> {
    processor: P,
    below: Fanout<P::KOut, P::VOut>,
    types: std::marker::PhantomData<fn(K, V)>,
}

struct Node<P: Processor<K, V>, K, V>(Arc<Mutex<Compiled<P, K, V>>>);

impl<P: Processor<K, V>, K: Send + 'static, V: Send + 'static> Downstream<K, V> for Node<P, K, V> {
    fn process(&mut self, ctx: &mut TaskContext, record: Record<K, V>) -> Result<()> {
        let mut node = self.0.lock();
        let Compiled {
            processor, below, ..
        } = &mut *node;
        let mut context = ProcessorContext {
            task: ctx,
            below,
            timestamp: record.timestamp,
        };
        processor.process(&mut context, record)
    }
}

struct Schedule<P: Processor<K, V>, K, V> {
    node: Arc<Mutex<Compiled<P, K, V>>>,
    kind: PunctuationType,
    interval: i64,
    next: Option<i64>,
}

impl<P: Processor<K, V>, K: Send + 'static, V: Send + 'static> Punctuate for Schedule<P, K, V> {
    fn fire(&mut self, ctx: &mut TaskContext, stream_time: i64, wall_clock: i64) -> Result<()> {
        let now = match self.kind {
            PunctuationType::StreamTime if stream_time == i64::MIN => return Ok(()),
            PunctuationType::StreamTime => stream_time,
            PunctuationType::WallClockTime => wall_clock,
        };
        // A stream-time schedule first fires at the task's first record (as
        // in Kafka Streams: until then there is no stream time), a
        // wall-clock one an interval after its first check.
        let next = *self.next.get_or_insert(match self.kind {
            PunctuationType::StreamTime => now,
            PunctuationType::WallClockTime => now + self.interval,
        });
        if now < next {
            return Ok(());
        }
        // Once per call even if several intervals passed (as Kafka
        // Streams), then aligned to the schedule again.
        self.next = Some(next + self.interval * ((now - next) / self.interval + 1));
        let mut node = self.node.lock();
        let Compiled {
            processor, below, ..
        } = &mut *node;
        let mut context = ProcessorContext {
            task: ctx,
            below,
            timestamp: now,
        };
        processor.punctuate(&mut context, self.kind, now)
    }
}

/// Compiles a processor node for one task: the factory binds its stores
/// and sets its schedules, which join the task's punctuators.
pub(crate) fn processor_node<P, K, V>(
    task: &mut Instantiation,
    stores: &[String],
    factory: &(dyn Fn(&mut ProcessorInit<'_>) -> P + Send + Sync),
    below: Fanout<P::KOut, P::VOut>,
) -> Box<dyn Downstream<K, V>>
where
    P: Processor<K, V>,
    K: Send + 'static,
    V: Send + 'static,
{
    let mut init = ProcessorInit {
        task,
        schedules: Vec::new(),
        stores,
    };
    let processor = factory(&mut init);
    let schedules = std::mem::take(&mut init.schedules);
    let node = Arc::new(Mutex::new(Compiled {
        processor,
        below,
        types: std::marker::PhantomData,
    }));
    for (kind, interval) in schedules {
        task.punctuators.push(Box::new(Schedule {
            node: Arc::clone(&node),
            kind,
            interval: (interval.as_millis() as i64).max(1),
            next: None,
        }));
    }
    Box::new(Node(node))
}
