//! How a windowed aggregation folds records into an aggregate, shared by
//! session and sliding windows: `count`, `reduce` and `aggregate` as one
//! pair of functions.

use std::sync::Arc;

/// `initial()` (none for a reduce, which starts from the first value),
/// then `add(key, value, aggregate)` per record.
pub(super) struct Fold<K, V, A> {
    pub(super) initial: Box<dyn Fn() -> Option<A> + Send + Sync>,
    pub(super) add: Adder<K, V, A>,
}

type Adder<K, V, A> = Box<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;

impl<K, V> Fold<K, V, i64> {
    /// How many records.
    pub(super) fn count() -> Fold<K, V, i64> {
        Fold {
            initial: Box::new(|| Some(0)),
            add: Box::new(|_, _, n| n.unwrap_or(0) + 1),
        }
    }
}

impl<K, V: 'static> Fold<K, V, V> {
    /// The values combined pairwise by `combine`.
    pub(super) fn reduce(combine: Arc<dyn Fn(V, V) -> V + Send + Sync>) -> Fold<K, V, V> {
        Fold {
            initial: Box::new(|| None),
            add: Box::new(move |_, v, previous| match previous {
                Some(previous) => combine(previous, v),
                None => v,
            }),
        }
    }
}

impl<K, V, A: 'static> Fold<K, V, A> {
    /// The values folded into `initial()` by `add`.
    pub(super) fn aggregate(
        initial: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
    ) -> Fold<K, V, A> {
        let initial = Arc::new(initial);
        let first = Arc::clone(&initial);
        Fold {
            initial: Box::new(move || Some(first())),
            add: Box::new(move |k, v, a| add(k, v, a.unwrap_or_else(|| initial()))),
        }
    }
}
