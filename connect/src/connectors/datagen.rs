//! A data generator, with the keys and quickstart names of Confluent's
//! kafka-connect-datagen: records of a few fixed shapes (`users`,
//! `orders`, `pageviews`) for demos, benchmarks and tests of pipelines.
//!
//! Every record is a pure function of `random.seed` and its index `i`
//! (0, 1, 2, ... over the whole connector): its fields come from a
//! splitmix64 generator seeded from both. So two runs with one seed make
//! the same records, and a task that restarts from its stored offset goes
//! on with exactly the records it had not made, none repeated. Task `t` of
//! `T` makes the indexes `t, t + T, t + 2T, ...`; its source partition is
//! `{"task": t}` and its offset `{"iteration": n}`, the number of records
//! it has made. The generator is written out here rather than taken from a
//! crate: a crate's algorithm may change between versions, and the data
//! would change with it.
//!
//! The shapes, each with `id` (the index `i`) and a string key field that
//! is also the record's key, cycling through `keys` values
//! (`k = i % keys + 1`); times are milliseconds since the epoch, from
//! [`BASE_TIME`] (2023-11-14T22:13:20Z), not the clock, to stay the same:
//!
//! - `users`: `id`; `userid` (key) `User_<k>`; `registertime` within
//!   about three years before `BASE_TIME`; `regionid` `Region_1`..`Region_9`;
//!   `gender` `MALE`, `FEMALE` or `OTHER`.
//! - `orders`: `id`; `itemid` (key) `Item_<k>`; `ordertime`
//!   `BASE_TIME + i s` plus under a second; `orderunits` 0.00..99.99;
//!   `address` an object of `city` `City_1`..`City_99`, `state`
//!   `State_1`..`State_50` and `zipcode` 10000..99999.
//! - `pageviews`: `id`; `userid` (key) `User_<k>`; `viewtime` as
//!   `ordertime`; `pageid` `Page_1`..`Page_99`.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;
use tokio::time::Instant;

use crate::api::{
    ConfigDef, ConfigKey, ConfigMap, ConfigType, Importance, SourceConnector, SourceOffset,
    SourcePartition, SourceRecord, SourceTask, SourceTaskContext, Validator, Value,
};
use crate::{ConnectError, Result};

/// The connector's class (spool's own; Confluent's is
/// `io.confluent.kafka.connect.datagen.DatagenConnector`).
pub const DATAGEN: &str = "io.spool.connect.datagen.DatagenConnector";

/// The topic written to (Confluent's key).
pub const KAFKA_TOPIC: &str = "kafka.topic";
/// The most milliseconds between two records of a task.
pub const MAX_INTERVAL: &str = "max.interval";
/// How many records in all; -1 for no end.
pub const ITERATIONS: &str = "iterations";
/// The shape: `users`, `orders` or `pageviews`.
pub const QUICKSTART: &str = "quickstart";
/// How many distinct keys.
pub const KEYS: &str = "keys";
/// The seed every record's fields come from.
pub const RANDOM_SEED: &str = "random.seed";
/// Set by the connector in each task's config: how many tasks share the
/// iterations. Not for users to set.
const TASK_COUNT: &str = "datagen.task.count";

/// The source partition's field: the task's number.
pub const TASK_FIELD: &str = "task";
/// The source offset's field: how many records the task has made.
pub const ITERATION_FIELD: &str = "iteration";

/// The time records' times count from (2023-11-14T22:13:20Z).
pub const BASE_TIME: i64 = 1_700_000_000_000;

/// The most records one poll returns: enough that the worker's loop costs
/// little per record, few enough that a poll returns quickly.
const POLL_BATCH: u64 = 1000;
/// How long a poll that waits between records may take: the worker stops
/// and pauses a task only between polls.
const POLL_BUDGET: Duration = Duration::from_millis(500);
/// How long a poll waits once every iteration is made.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// The record shapes (see the module's comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quickstart {
    Users,
    Orders,
    Pageviews,
}

impl Quickstart {
    const NAMES: [&'static str; 3] = ["users", "orders", "pageviews"];

    fn from_name(name: &str) -> Option<Quickstart> {
        match name {
            "users" => Some(Quickstart::Users),
            "orders" => Some(Quickstart::Orders),
            "pageviews" => Some(Quickstart::Pageviews),
            _ => None,
        }
    }

    /// Record `index`'s key and value, its fields drawn from `rng`.
    pub fn record(self, index: u64, keys: u64, rng: &mut SplitMix64) -> (String, Value) {
        let k = index % keys.max(1) + 1;
        let id = Value::from(index);
        let at = BASE_TIME
            .saturating_add(
                i64::try_from(index)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000),
            )
            .saturating_add(rng.below_i64(1000));
        match self {
            Quickstart::Users => {
                let key = format!("User_{k}");
                let gender = ["MALE", "FEMALE", "OTHER"][rng.index(3)];
                let value = json!({
                    "id": id,
                    "userid": key,
                    "registertime": BASE_TIME - rng.below_i64(100_000_000_000),
                    "regionid": format!("Region_{}", rng.below(9) + 1),
                    "gender": gender,
                });
                (key, value)
            }
            Quickstart::Orders => {
                let key = format!("Item_{k}");
                let value = json!({
                    "id": id,
                    "itemid": key,
                    "ordertime": at,
                    "orderunits": rng.below_i64(10_000) as f64 / 100.0,
                    "address": {
                        "city": format!("City_{}", rng.below(99) + 1),
                        "state": format!("State_{}", rng.below(50) + 1),
                        "zipcode": 10_000 + rng.below_i64(90_000),
                    },
                });
                (key, value)
            }
            Quickstart::Pageviews => {
                let key = format!("User_{k}");
                let value = json!({
                    "id": id,
                    "userid": key,
                    "viewtime": at,
                    "pageid": format!("Page_{}", rng.below(99) + 1),
                });
                (key, value)
            }
        }
    }
}

/// splitmix64 (Steele, Lea and Flood; the seeding generator of Java's
/// `SplittableRandom` and of xoshiro): a 64-bit counter stepped by the
/// golden ratio and mixed. Small, fast, well distributed, and fixed here
/// forever (see the module's comment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(u64);

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's output function: a bijection that scatters every bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The generator of record `index` under `seed`: both mixed, so
    /// neighbouring records (or seeds) draw unrelated numbers.
    pub fn for_record(seed: u64, index: u64) -> SplitMix64 {
        SplitMix64(mix(seed) ^ mix(index.wrapping_add(GOLDEN_GAMMA)))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0)
    }

    /// A number below `bound` (at least 1). The modulo's bias is below
    /// `bound / 2^64`, nothing for the small bounds used here.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    fn below_i64(&mut self, bound: u64) -> i64 {
        i64::try_from(self.below(bound)).unwrap_or(i64::MAX)
    }

    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).unwrap_or(0)
    }
}

/// The connector's keys, as Confluent's datagen names them.
pub fn config_def() -> ConfigDef {
    let key = |name: &str, config_type: ConfigType, doc: &str| {
        ConfigKey::new(name, config_type, Importance::High, doc)
    };
    ConfigDef::new()
        .define(
            key(KAFKA_TOPIC, ConfigType::String, "The topic to write to.")
                .validator(Validator::NonEmptyString),
        )
        // 0 (Confluent's is 500 ms): a generator feeding a benchmark or a
        // test wants its records now; a demo that wants a trickle sets it.
        .define(
            key(
                MAX_INTERVAL,
                ConfigType::Long,
                "The most milliseconds between two records of a task (each wait is drawn \
                 below it); 0 for as fast as the worker takes them.",
            )
            .default_value("0")
            .validator(Validator::at_least(0)),
        )
        // No end by default, as Confluent's: a generator is a stream.
        .define(
            key(
                ITERATIONS,
                ConfigType::Long,
                "How many records to make in all (split over the tasks); -1 for no end.",
            )
            .default_value("-1")
            .validator(Validator::at_least(-1)),
        )
        // users: the smallest shape, so a config with only a topic runs.
        .define(
            key(
                QUICKSTART,
                ConfigType::String,
                "The records' shape: users, orders or pageviews.",
            )
            .default_value("users")
            .validator(Validator::OneOf(
                Quickstart::NAMES.iter().map(|n| n.to_string()).collect(),
            )),
        )
        // 1000: keys repeat (a compacted topic or an upsert table stays
        // small) yet spread evenly over any partition count.
        .define(
            key(
                KEYS,
                ConfigType::Long,
                "How many distinct keys the records have.",
            )
            .default_value("1000")
            .validator(Validator::at_least(1)),
        )
        // Fixed, unlike Confluent's (random when absent): the same config
        // makes the same data, which a test or a comparison needs.
        .define(
            key(
                RANDOM_SEED,
                ConfigType::Long,
                "The seed every record's fields are drawn from.",
            )
            .default_value("0"),
        )
}

/// The data generator connector (see the module's comment).
#[derive(Debug, Default)]
pub struct DatagenConnector {
    config: ConfigMap,
    iterations: Option<u64>,
}

impl SourceConnector for DatagenConnector {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    fn start(&mut self, config: &ConfigMap) -> Result<()> {
        let parsed = config_def().parse(config)?;
        self.iterations = u64::try_from(parsed.long(ITERATIONS)?).ok();
        self.config = config.clone();
        Ok(())
    }

    /// `max_tasks` tasks, but no more than there are records to make.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        let wanted = u64::try_from(max_tasks.max(1)).unwrap_or(1);
        let tasks = match self.iterations {
            Some(iterations) => wanted.min(iterations.max(1)),
            None => wanted,
        };
        let mut config = self.config.clone();
        config.insert(TASK_COUNT.to_string(), tasks.to_string());
        Ok((0..tasks).map(|_| config.clone()).collect())
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(DatagenTask::default())
    }

    /// A partition is `{"task": n}`, an offset `{"iteration": n}`; they
    /// are the generator's only record of how far it went.
    fn alter_offsets(
        &self,
        _config: &ConfigMap,
        offsets: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<bool> {
        for (partition, offset) in offsets {
            if !partition.get(TASK_FIELD).is_some_and(Value::is_u64) || partition.len() != 1 {
                return Err(ConnectError::BadRequest(format!(
                    "a datagen source partition is {{\"{TASK_FIELD}\": <task number>}}, not {}",
                    Value::Object(partition.clone().into_iter().collect())
                )));
            }
            if let Some(offset) = offset {
                iteration_of(offset).map_err(|_| {
                    ConnectError::BadRequest(format!(
                        "a datagen source offset is {{\"{ITERATION_FIELD}\": <records made>}}, \
                         not {}",
                        Value::Object(offset.clone().into_iter().collect())
                    ))
                })?;
            }
        }
        Ok(true)
    }
}

/// What a task makes, from its config.
#[derive(Clone, Debug)]
struct Plan {
    topic: String,
    shape: Quickstart,
    seed: u64,
    keys: u64,
    max_interval: Duration,
    task: u64,
    tasks: u64,
    /// This task's share of the iterations; `None` for no end.
    count: Option<u64>,
}

/// A data generator task (see the module's comment).
#[derive(Debug, Default)]
pub struct DatagenTask {
    plan: Option<Plan>,
    partition: SourcePartition,
    /// How many records this task has made: its next iteration.
    made: u64,
    /// When the next record is due, with `max.interval`.
    due: Option<Instant>,
}

impl DatagenTask {
    fn begin(&mut self, config: &ConfigMap, context: &SourceTaskContext) -> Result<()> {
        let parsed = config_def().parse(config)?;
        let tasks = config
            .get(TASK_COUNT)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(1)
            .max(1);
        let task = u64::from(context.task());
        let count = u64::try_from(parsed.long(ITERATIONS)?)
            .ok()
            .map(|total| total / tasks + u64::from(task < total % tasks));
        let shape = Quickstart::from_name(parsed.string(QUICKSTART)?)
            .ok_or_else(|| ConnectError::config(QUICKSTART, "unknown quickstart"))?;
        let interval = u64::try_from(parsed.long(MAX_INTERVAL)?).unwrap_or(0);
        let plan = Plan {
            topic: parsed.string(KAFKA_TOPIC)?.to_string(),
            shape,
            // The seed's bits as they are: a negative seed is as good.
            seed: parsed.long(RANDOM_SEED)? as u64,
            keys: u64::try_from(parsed.long(KEYS)?).unwrap_or(1).max(1),
            max_interval: Duration::from_millis(interval),
            task,
            tasks,
            count,
        };
        self.partition = [(TASK_FIELD.to_string(), Value::from(task))].into();
        self.made = match context.offsets().offset(&self.partition) {
            Some(offset) => iteration_of(offset)?,
            None => 0,
        };
        tracing::info!(
            connector = %context.connector(),
            task,
            quickstart = ?shape,
            from = self.made,
            "datagen task starting"
        );
        self.plan = Some(plan);
        Ok(())
    }

    /// The next records: a batch at once without `max.interval`, else one
    /// by one as each falls due, for at most [`POLL_BUDGET`].
    async fn generate(&mut self) -> Result<Vec<SourceRecord>> {
        let Some(plan) = self.plan.clone() else {
            return Err(ConnectError::Task("the datagen task is not started".into()));
        };
        let left = plan.count.map(|count| count.saturating_sub(self.made));
        if left == Some(0) {
            tokio::time::sleep(IDLE_WAIT).await;
            return Ok(Vec::new());
        }
        let batch = left.map_or(POLL_BATCH, |left| left.min(POLL_BATCH));
        if plan.max_interval.is_zero() {
            return Ok((0..batch).map(|_| self.next_record(&plan).0).collect());
        }
        let budget = Instant::now() + POLL_BUDGET;
        let mut records = Vec::new();
        while (records.len() as u64) < batch {
            let due = self.due.unwrap_or_else(Instant::now);
            if due > budget {
                tokio::time::sleep_until(budget).await;
                break;
            }
            tokio::time::sleep_until(due).await;
            let (record, wait) = self.next_record(&plan);
            records.push(record);
            self.due = Some(Instant::now() + wait);
        }
        Ok(records)
    }

    /// The task's next record, and how long to wait before the one after.
    fn next_record(&mut self, plan: &Plan) -> (SourceRecord, Duration) {
        let index = self
            .made
            .saturating_mul(plan.tasks)
            .saturating_add(plan.task);
        let mut rng = SplitMix64::for_record(plan.seed, index);
        let (key, value) = plan.shape.record(index, plan.keys, &mut rng);
        let interval = u64::try_from(plan.max_interval.as_millis()).unwrap_or(u64::MAX);
        let wait = Duration::from_millis(rng.below(interval.saturating_add(1)));
        self.made += 1;
        let offset: SourceOffset = [(ITERATION_FIELD.to_string(), Value::from(self.made))].into();
        let mut record = SourceRecord::new(
            self.partition.clone(),
            offset,
            plan.topic.clone(),
            Some(value),
        );
        record.key = Some(Value::String(key));
        (record, wait)
    }
}

/// The number of records a stored offset says were made.
fn iteration_of(offset: &SourceOffset) -> Result<u64> {
    offset
        .get(ITERATION_FIELD)
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            ConnectError::Task(format!(
                "the stored source offset {offset:?} has no `{ITERATION_FIELD}` count"
            ))
        })
}

impl SourceTask for DatagenTask {
    fn start(
        &mut self,
        config: ConfigMap,
        context: SourceTaskContext,
    ) -> BoxFuture<'_, Result<()>> {
        let started = self.begin(&config, &context);
        Box::pin(std::future::ready(started))
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(self.generate())
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<()>> {
        self.plan = None;
        crate::api::done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OffsetStorageReader;

    #[test]
    fn splitmix64_gives_its_published_sequence() {
        // The first outputs for seed 0, as in the reference implementation.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_ne!(
            SplitMix64::for_record(0, 1).next_u64(),
            SplitMix64::for_record(0, 2).next_u64()
        );
    }

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    async fn started(config: &ConfigMap, task: u32, offsets: OffsetStorageReader) -> DatagenTask {
        let mut datagen = DatagenTask::default();
        let context = SourceTaskContext::new("gen", task, offsets);
        datagen.start(config.clone(), context).await.unwrap();
        datagen
    }

    #[tokio::test]
    async fn tasks_split_the_iterations_and_resume_from_their_offset() {
        let mut connector = DatagenConnector::default();
        let base = config(&[
            (KAFKA_TOPIC, "t"),
            (ITERATIONS, "7"),
            (QUICKSTART, "orders"),
        ]);
        connector.start(&base).unwrap();
        let configs = connector.task_configs(2).unwrap();
        assert_eq!(configs.len(), 2);
        let mut ids = Vec::new();
        for (task, config) in configs.iter().enumerate() {
            let task = u32::try_from(task).unwrap();
            let mut datagen = started(config, task, OffsetStorageReader::default()).await;
            let records = datagen.poll().await.unwrap();
            assert_eq!(records.len(), if task == 0 { 4 } else { 3 });
            ids.extend(
                records
                    .iter()
                    .map(|r| r.value.as_ref().unwrap()["id"].as_u64().unwrap()),
            );
            assert!(datagen.poll().await.unwrap().is_empty(), "all made");
            let last = records.last().unwrap();
            assert_eq!(last.source_partition[TASK_FIELD], Value::from(task));
            assert_eq!(
                last.source_offset[ITERATION_FIELD],
                Value::from(records.len())
            );
        }
        ids.sort_unstable();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6]);

        // Task 0 restarted after 2 of its records: the other 2, the same.
        let mut first = started(&configs[0], 0, OffsetStorageReader::default()).await;
        let all = first.poll().await.unwrap();
        let partition: SourcePartition = [(TASK_FIELD.to_string(), Value::from(0))].into();
        let offset: SourceOffset = [(ITERATION_FIELD.to_string(), Value::from(2))].into();
        let reader = OffsetStorageReader::new([(partition, offset)]);
        let mut resumed = started(&configs[0], 0, reader).await;
        assert_eq!(resumed.poll().await.unwrap(), all[2..]);
        assert_eq!(all[1].key, Some(Value::from("Item_3")), "index 2");
    }

    #[test]
    fn every_shape_has_an_id_and_its_key_as_a_field() {
        for (shape, field) in [
            (Quickstart::Users, "userid"),
            (Quickstart::Orders, "itemid"),
            (Quickstart::Pageviews, "userid"),
        ] {
            let (key, value) = shape.record(12, 5, &mut SplitMix64::for_record(9, 12));
            assert_eq!(value["id"], 12);
            assert_eq!(value[field], Value::from(key.clone()));
            assert!(key.ends_with("_3"), "{key}");
            let again = shape.record(12, 5, &mut SplitMix64::for_record(9, 12));
            assert_eq!(again, (key, value), "deterministic");
        }
    }
}
