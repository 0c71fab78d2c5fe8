//! Typed handles on key-value stores for processors.

use std::sync::Arc;

use super::ProcessorContext;
use crate::codec::Codec;
use crate::topology::StoreId;
use crate::Result;

/// A store declared with `StreamsBuilder::add_state_store`: its name and
/// codecs. Bound per task into a [`KeyValueStore`].
pub struct StoreHandle<K, V> {
    pub(crate) name: String,
    pub(crate) keys: Arc<dyn Codec<K>>,
    pub(crate) values: Arc<dyn Codec<V>>,
}

impl<K, V> Clone for StoreHandle<K, V> {
    fn clone(&self) -> Self {
        StoreHandle {
            name: self.name.clone(),
            keys: Arc::clone(&self.keys),
            values: Arc::clone(&self.values),
        }
    }
}

impl<K, V> StoreHandle<K, V> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn bind(&self, id: StoreId) -> KeyValueStore<K, V> {
        KeyValueStore {
            id,
            keys: Arc::clone(&self.keys),
            values: Arc::clone(&self.values),
        }
    }
}

/// One task's store, typed: reads see this task's own uncommitted writes;
/// writes reach the changelog and the disk at the next commit.
pub struct KeyValueStore<K, V> {
    id: StoreId,
    keys: Arc<dyn Codec<K>>,
    values: Arc<dyn Codec<V>>,
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> {
    fn key_bytes(&self, key: &K) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.keys.encode(key, &mut bytes)?;
        Ok(bytes)
    }

    pub fn get<A, B>(&self, ctx: &ProcessorContext<'_, A, B>, key: &K) -> Result<Option<V>> {
        let key = self.key_bytes(key)?;
        match ctx.task.stores[self.id.0].get(&key)? {
            Some(bytes) => Ok(Some(self.values.decode(&bytes)?)),
            None => Ok(None),
        }
    }

    pub fn put<A, B>(
        &self,
        ctx: &mut ProcessorContext<'_, A, B>,
        key: &K,
        value: &V,
    ) -> Result<()> {
        let key = self.key_bytes(key)?;
        let mut bytes = Vec::new();
        self.values.encode(value, &mut bytes)?;
        ctx.task.store(self.id).put(&key, Some(bytes));
        Ok(())
    }

    pub fn delete<A, B>(&self, ctx: &mut ProcessorContext<'_, A, B>, key: &K) -> Result<()> {
        let key = self.key_bytes(key)?;
        ctx.task.store(self.id).put(&key, None);
        Ok(())
    }

    /// The entries whose encoded keys lie in `from..to` (byte order of
    /// the key encoding; with `BigEndian` keys, numeric order for
    /// non-negative numbers), committed or not.
    pub fn range<A, B>(
        &self,
        ctx: &ProcessorContext<'_, A, B>,
        from: &K,
        to: &K,
    ) -> Result<Vec<(K, V)>> {
        let (from, to) = (self.key_bytes(from)?, self.key_bytes(to)?);
        ctx.task.stores[self.id.0]
            .range(&from, &to)?
            .iter()
            .map(|(k, v)| Ok((self.keys.decode(k)?, self.values.decode(v)?)))
            .collect()
    }

    /// Every entry, committed or not, in the key encoding's byte order.
    pub fn all<A, B>(&self, ctx: &ProcessorContext<'_, A, B>) -> Result<Vec<(K, V)>> {
        ctx.task.stores[self.id.0]
            .entries()?
            .iter()
            .map(|(k, v)| Ok((self.keys.decode(k)?, self.values.decode(v)?)))
            .collect()
    }
}
