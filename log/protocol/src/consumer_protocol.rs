//! Kafka's consumer protocol (version 1): the subscription a member sends in
//! JoinGroup and the assignment the leader hands back in SyncGroup. The same
//! bytes as Kafka's clients, so members of either kind can share a group.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{ProtocolError, Result, TopicPartition};

const VERSION: i16 = 1;

/// What a member wants: its topics, and the partitions it owns now (used by
/// the cooperative-sticky assignor).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub owned: Vec<TopicPartition>,
}

/// What a member gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    pub partitions: Vec<TopicPartition>,
}

impl Subscription {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(VERSION);
        out.put_i32(self.topics.len() as i32);
        for topic in &self.topics {
            put_string(&mut out, topic);
        }
        out.put_i32(-1); // no user data
        put_partitions(&mut out, &self.owned);
        out.freeze()
    }

    pub fn decode(mut bytes: &[u8]) -> Result<Subscription> {
        let version = get_i16(&mut bytes)?;
        let count = get_len(&mut bytes)?;
        let topics = (0..count)
            .map(|_| get_string(&mut bytes))
            .collect::<Result<_>>()?;
        skip_bytes(&mut bytes)?;
        let owned = if version >= 1 && bytes.has_remaining() {
            get_partitions(&mut bytes)?
        } else {
            Vec::new()
        };
        Ok(Subscription { topics, owned })
    }
}

impl Assignment {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(VERSION);
        put_partitions(&mut out, &self.partitions);
        out.put_i32(-1);
        out.freeze()
    }

    /// An empty byte string (a member with nothing assigned) decodes to an
    /// empty assignment.
    pub fn decode(mut bytes: &[u8]) -> Result<Assignment> {
        if bytes.is_empty() {
            return Ok(Assignment::default());
        }
        get_i16(&mut bytes)?;
        Ok(Assignment {
            partitions: get_partitions(&mut bytes)?,
        })
    }
}

fn put_string(out: &mut BytesMut, text: &str) {
    out.put_i16(text.len() as i16);
    out.put_slice(text.as_bytes());
}

fn put_partitions(out: &mut BytesMut, partitions: &[TopicPartition]) {
    let mut topics: Vec<(&str, Vec<u32>)> = Vec::new();
    for tp in partitions {
        match topics.iter_mut().find(|(t, _)| *t == tp.topic) {
            Some((_, ps)) => ps.push(tp.partition),
            None => topics.push((&tp.topic, vec![tp.partition])),
        }
    }
    out.put_i32(topics.len() as i32);
    for (topic, ps) in topics {
        put_string(out, topic);
        out.put_i32(ps.len() as i32);
        for p in ps {
            out.put_i32(p as i32);
        }
    }
}

fn malformed(what: &str) -> ProtocolError {
    ProtocolError::Malformed(format!("consumer protocol data: {what}"))
}

fn get_i16(bytes: &mut &[u8]) -> Result<i16> {
    if bytes.remaining() < 2 {
        return Err(malformed("truncated"));
    }
    Ok(bytes.get_i16())
}

fn get_len(bytes: &mut &[u8]) -> Result<usize> {
    if bytes.remaining() < 4 {
        return Err(malformed("truncated"));
    }
    let n = bytes.get_i32();
    if n < 0 || n as usize > bytes.remaining() {
        return Err(malformed("bad array length"));
    }
    Ok(n as usize)
}

fn get_string(bytes: &mut &[u8]) -> Result<String> {
    let len = get_i16(bytes)?;
    if len < 0 || len as usize > bytes.remaining() {
        return Err(malformed("bad string length"));
    }
    let text = String::from_utf8(bytes[..len as usize].to_vec())
        .map_err(|_| malformed("string is not UTF-8"))?;
    bytes.advance(len as usize);
    Ok(text)
}

fn skip_bytes(bytes: &mut &[u8]) -> Result<()> {
    if bytes.remaining() < 4 {
        return Err(malformed("truncated"));
    }
    let n = bytes.get_i32();
    if n > 0 {
        if n as usize > bytes.remaining() {
            return Err(malformed("bad bytes length"));
        }
        bytes.advance(n as usize);
    }
    Ok(())
}

fn get_partitions(bytes: &mut &[u8]) -> Result<Vec<TopicPartition>> {
    let topics = get_len(bytes)?;
    let mut out = Vec::new();
    for _ in 0..topics {
        let topic = get_string(bytes)?;
        let count = get_len(bytes)?;
        for _ in 0..count {
            if bytes.remaining() < 4 {
                return Err(malformed("truncated"));
            }
            out.push(TopicPartition::new(topic.clone(), bytes.get_i32() as u32));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            owned: vec![
                TopicPartition::new("a", 0),
                TopicPartition::new("a", 2),
                TopicPartition::new("b", 1),
            ],
        };
        assert_eq!(Subscription::decode(&s.encode()).unwrap(), s);
        let a = Assignment {
            partitions: vec![TopicPartition::new("x", 3)],
        };
        assert_eq!(Assignment::decode(&a.encode()).unwrap(), a);
        assert_eq!(Assignment::decode(&[]).unwrap(), Assignment::default());
        assert!(Subscription::decode(&[0, 1, 0, 0, 0, 9]).is_err());
    }
}
