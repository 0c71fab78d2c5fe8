//! Where records enter: `StreamsBuilder::stream` and `table`, and the
//! internal sources of repartition topics. A source decodes each raw
//! record with its topic's codecs.

use std::sync::Arc;

use super::config::{Consumed, Materialized};
use super::join::TableView;
use super::{Change, KStream, KTable, StreamsBuilder};
use crate::codec::Codec;
use crate::record::Record;
use crate::topology::node::{
    Children, Fanout, RawRecord, SharedFanout, SourceEntry, SourceFactory,
};
use crate::topology::{NodeKind, StoreId, TaskContext, TopicName};
use crate::Result;

impl StreamsBuilder {
    /// A stream of `topic`'s records.
    pub fn stream<K, V>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        self.stream_of(&[topic], consumed)
    }

    /// One stream of the records of several topics (decoded alike).
    pub fn stream_of<K, V>(&self, topics: &[&str], consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        let topics: Vec<TopicName> = topics
            .iter()
            .map(|t| TopicName::User(t.to_string()))
            .collect();
        self.source_of(topics, Arc::new(consumed))
    }

    /// A stream of an internal topic's records (a repartition topic).
    pub(crate) fn internal_stream<K, V>(
        &self,
        topic: TopicName,
        consumed: Consumed<K, V>,
    ) -> KStream<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        self.source_of(vec![topic], Arc::new(consumed))
    }

    fn source_of<K, V>(
        &self,
        topics: Vec<TopicName>,
        consumed: Arc<Consumed<K, V>>,
    ) -> KStream<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        let names = topics.iter().map(TopicName::to_string).collect();
        let node = self.add_node("SOURCE", NodeKind::Source { topics: names }, &[]);
        let children = Children::new();
        let one_topic = topics.len() == 1;
        for topic in topics {
            let (below, consumed) = (children.clone(), Arc::clone(&consumed));
            let source_topic = topic.clone();
            let factory: SourceFactory = Arc::new(move |task| {
                Box::new(Source {
                    topic: source_topic.resolve(&task.app_id),
                    consumed: Arc::clone(&consumed),
                    below: match one_topic {
                        true => Below::Own(below.instantiate(task)),
                        false => Below::Shared(below.instantiate_shared(task)),
                    },
                })
            });
            self.add_source(topic, node, factory);
        }
        KStream::new(self.clone(), node, children)
    }

    /// One stream of the records of every topic whose name matches
    /// `pattern` (a regular expression matched against the whole name),
    /// decoded alike. The topics are those that exist when the
    /// application starts; every one of them must have as many partitions
    /// (partition `p` of each is in task `p`).
    pub fn stream_pattern<K, V>(&self, pattern: &str, consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        let node = self.add_node(
            "SOURCE",
            NodeKind::Source {
                topics: vec![format!("pattern {pattern}")],
            },
            &[],
        );
        let children = Children::new();
        let (below, consumed) = (children.clone(), Arc::new(consumed));
        let label = format!("pattern {pattern}");
        let factory: SourceFactory = Arc::new(move |task| {
            Box::new(Source {
                topic: label.clone(),
                consumed: Arc::clone(&consumed),
                below: Below::Own(below.instantiate(task)),
            })
        });
        match regex::Regex::new(&format!("^(?:{pattern})$")) {
            Ok(regex) => self.add_pattern(regex, node, factory),
            Err(e) => self.refuse(format!("source pattern `{pattern}`: {e}")),
        }
        KStream::new(self.clone(), node, children)
    }

    /// A table of `topic`: each record the latest value of its key, a
    /// null value deleting it. Kept in the store `materialized` describes
    /// (a source table is always materialized, as in Kafka Streams).
    pub fn table<K, V>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        let source_topic = TopicName::User(topic.to_string());
        let source = self.add_node(
            "SOURCE",
            NodeKind::Source {
                topics: vec![topic.to_string()],
            },
            &[],
        );
        let node = self.add_node("TABLE-SOURCE", NodeKind::processor(), &[source]);
        let spec = materialized.spec(|| format!("{topic}-STATE-STORE-{node:010}"));
        let store_name = spec.name.clone();
        self.add_store(spec, node);
        let children: Children<K, Change<V>> = Children::new();
        let (below, consumed) = (children.clone(), Arc::new(consumed));
        let keys = Arc::clone(&materialized.keys);
        let values = Arc::clone(&materialized.values);
        let view = TableView::of_store(&store_name, Arc::clone(&keys), Arc::clone(&values));
        let factory: SourceFactory = Arc::new(move |task| {
            Box::new(TableSource {
                topic: source_topic.resolve(&task.app_id),
                consumed: Arc::clone(&consumed),
                store: task.store(&store_name),
                stored_keys: Arc::clone(&keys),
                stored: Arc::clone(&values),
                below: below.instantiate(task),
                key_buffer: Vec::new(),
            })
        });
        self.add_source(TopicName::User(topic.to_string()), source, factory);
        KTable::new(self.clone(), node, children, view)
    }
}

/// A compiled stream source: decodes each record with its topic's codecs.
struct Source<K, V> {
    /// For errors: the topic, or the pattern.
    topic: String,
    consumed: Arc<Consumed<K, V>>,
    below: Below<K, V>,
}

/// What lies below a source: its own, or shared with the source's other
/// topics (so each node below runs once per task).
enum Below<K, V> {
    Own(Fanout<K, V>),
    Shared(SharedFanout<K, V>),
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> SourceEntry for Source<K, V> {
    fn process_raw(&mut self, ctx: &mut TaskContext, raw: RawRecord<'_>) -> Result<()> {
        let decoded = self
            .consumed
            .keys
            .decode_nullable(raw.key)
            .and_then(|key| Ok((key, self.consumed.values.decode_nullable(raw.value)?)));
        match decoded {
            Ok((key, value)) => {
                let record = Record {
                    key,
                    value,
                    timestamp: raw.timestamp,
                    headers: raw.headers.to_vec(),
                };
                match &mut self.below {
                    Below::Own(below) => below.forward(ctx, record),
                    Below::Shared(below) => below.lock().forward(ctx, record),
                }
            }
            Err(e) => ctx.decode_failed(&self.topic, &raw, e),
        }
    }
}

/// A compiled table source: upserts each record into its store and
/// forwards the change (a null value deletes; a null key is skipped, as
/// Kafka Streams skips it).
struct TableSource<K, V> {
    topic: String,
    consumed: Arc<Consumed<K, V>>,
    store: StoreId,
    stored_keys: Arc<dyn Codec<K>>,
    stored: Arc<dyn Codec<V>>,
    below: Fanout<K, Change<V>>,
    key_buffer: Vec<u8>,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> TableSource<K, V> {
    fn upsert(
        &mut self,
        ctx: &mut TaskContext,
        raw: RawRecord<'_>,
    ) -> Result<Option<Record<K, Change<V>>>> {
        let Some(key_bytes) = raw.key else {
            return Ok(None);
        };
        let key = self.consumed.keys.decode(key_bytes)?;
        let new = raw
            .value
            .map(|v| self.consumed.values.decode(v))
            .transpose()?;
        // The store keeps its own codecs' encoding, which may differ from
        // the topic's: lookups by key encode with the store's codec.
        self.key_buffer.clear();
        self.stored_keys.encode(&key, &mut self.key_buffer)?;
        let store = ctx.store(self.store);
        let old = store
            .get(&self.key_buffer)?
            .map(|b| self.stored.decode(&b))
            .transpose()?;
        let stored = match &new {
            Some(value) => {
                let mut bytes = Vec::new();
                self.stored.encode(value, &mut bytes)?;
                Some(bytes)
            }
            None => None,
        };
        store.put(&self.key_buffer, stored);
        Ok(Some(Record {
            key,
            value: Change { new, old },
            timestamp: raw.timestamp,
            headers: raw.headers.to_vec(),
        }))
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> SourceEntry for TableSource<K, V> {
    fn process_raw(&mut self, ctx: &mut TaskContext, raw: RawRecord<'_>) -> Result<()> {
        match self.upsert(ctx, raw) {
            Ok(Some(record)) => self.below.forward(ctx, record),
            Ok(None) => Ok(()),
            Err(e) => {
                let topic = self.topic.clone();
                ctx.decode_failed(&topic, &raw, e)
            }
        }
    }
}
