//! The processor API: custom processors in a topology, with typed store
//! handles and punctuation (Kafka Streams' `Processor`, `ProcessorContext`
//! and `Punctuator`).
//!
//! A processor is plain synchronous code. Its stores are bound when a
//! task compiles the node: the factory receives a [`ProcessorInit`] and
//! turns each [`StoreHandle`] the program got from
//! [`crate::StreamsBuilder::add_state_store`] into a [`KeyValueStore`]
//! that reaches the task's store by index. Nothing is looked up by name
//! or downcast per record.

mod node;
mod store;

use std::time::Duration;

pub use store::{KeyValueStore, StoreHandle};

pub(crate) use node::processor_node;

use crate::record::Record;
use crate::topology::node::Fanout;
use crate::topology::{Instantiation, TaskContext};
use crate::Result;

/// When a punctuation fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PunctuationType {
    /// When the task's stream time (the largest record timestamp it has
    /// processed) has advanced by the interval: driven by data, so
    /// replaying history punctuates as the original run did.
    StreamTime,
    /// When the wall clock has advanced by the interval, records or not.
    WallClockTime,
}

/// A custom processor: takes records of `(K, V)`, forwards records of
/// `(KOut, VOut)` through its context.
pub trait Processor<K, V>: Send + 'static {
    type KOut: Clone + Send + 'static;
    type VOut: Clone + Send + 'static;

    /// Processes one record. An error stops the task (the runtime's error
    /// handling decides what follows).
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Self::KOut, Self::VOut>,
        record: Record<K, V>,
    ) -> Result<()>;

    /// Called for each schedule the factory set with
    /// [`ProcessorInit::schedule`], with the time (milliseconds: stream
    /// time or wall clock, as scheduled) it fired at.
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, Self::KOut, Self::VOut>,
        _kind: PunctuationType,
        _timestamp: i64,
    ) -> Result<()> {
        Ok(())
    }
}

/// What a processor sees while it runs: its task's stores, its children.
pub struct ProcessorContext<'a, K, V> {
    pub(crate) task: &'a mut TaskContext,
    pub(crate) below: &'a mut Fanout<K, V>,
    pub(crate) timestamp: i64,
}

impl<K: Clone, V: Clone> ProcessorContext<'_, K, V> {
    /// Sends a record to the processor's children.
    pub fn forward(&mut self, record: Record<K, V>) -> Result<()> {
        self.below.forward(self.task, record)
    }

    /// The timestamp of the record being processed, or the time a
    /// punctuation fired at.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
}

/// Given to a processor's factory once per task: binds store handles and
/// schedules punctuations.
pub struct ProcessorInit<'a> {
    pub(crate) task: &'a mut Instantiation,
    pub(crate) schedules: Vec<(PunctuationType, Duration)>,
    pub(crate) stores: &'a [String],
}

impl ProcessorInit<'_> {
    /// This task's instance of a store the processor was connected to.
    /// Panics if the store was not passed to `process` (a programming
    /// mistake `StreamsBuilder::build` reports first).
    pub fn store<K, V>(&mut self, handle: &StoreHandle<K, V>) -> KeyValueStore<K, V> {
        debug_assert!(self.stores.contains(&handle.name), "store not connected");
        handle.bind(self.task.store(&handle.name))
    }

    /// Calls `punctuate` every `interval` of `kind` time.
    pub fn schedule(&mut self, kind: PunctuationType, interval: Duration) {
        self.schedules.push((kind, interval));
    }
}
