//! The admin client retries retriable failures until its API timeout
//! (Kafka's `default.api.timeout.ms`), and no longer. The broker is an
//! embedded node reached through a transport that loses the first few
//! requests, as a connection to a broker that just died does: with
//! `Admin`'s retries the calls succeed; with an API timeout of zero (the
//! protection removed) the first call fails with the transport error.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::spool_client::{Client, ClientError, Result, Transport};
use futures::future::BoxFuture;
use spool_broker::Node;
use spool_protocol::proto::*;

/// A transport that fails the next `failures` requests as undelivered,
/// then passes every request to `inner`; `sent` counts the requests.
struct LosesFirstRequests {
    inner: Client,
    failures: AtomicU32,
    sent: Arc<AtomicU32>,
}

impl LosesFirstRequests {
    fn lost(&self) -> bool {
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

macro_rules! losing_transport {
    ($($kind:ident $name:ident($request:ty) -> $response:ty;)*) => {
        impl Transport for LosesFirstRequests {
            $(
                fn $name(&self, request: $request) -> BoxFuture<'_, Result<$response>> {
                    Box::pin(async move {
                        if self.lost() {
                            return Err(ClientError::Transport {
                                address: "127.0.0.1:1".into(),
                                reason: "connection refused (injected)".into(),
                            });
                        }
                        self.inner.$name(request).await
                    })
                }
            )*
        }
    };
}

spool_protocol::with_rpcs!(losing_transport);

fn losing(inner: Client, failures: u32) -> Client {
    counted_losing(inner, failures, Arc::default())
}

fn counted_losing(inner: Client, failures: u32, sent: Arc<AtomicU32>) -> Client {
    Client::new(Arc::new(LosesFirstRequests {
        inner,
        failures: AtomicU32::new(failures),
        sent,
    }))
}

#[tokio::test]
async fn admin_calls_retry_undelivered_requests() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path()).await.unwrap();
    let admin = losing(node.client(), 5).admin();
    admin.create_topic("events", 2, &[]).await.unwrap();
    let admin = losing(node.client(), 3).admin();
    let described = admin.describe_topic("events").await.unwrap();
    assert_eq!(described.partitions.len(), 2);
    let admin = losing(node.client(), 3).admin();
    admin.delete_topic("events").await.unwrap();
    assert!(node
        .client()
        .admin()
        .list_topics()
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn admin_calls_give_up_at_their_api_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path()).await.unwrap();
    let admin = losing(node.client(), 1)
        .admin()
        .with_api_timeout(Duration::ZERO);
    let refused = admin.create_topic("events", 1, &[]).await.unwrap_err();
    assert!(
        matches!(refused, ClientError::Transport { .. }),
        "{refused:?}"
    );
    let admin = losing(node.client(), u32::MAX)
        .admin()
        .with_api_timeout(Duration::from_millis(500));
    let refused = admin.list_topics().await.unwrap_err();
    assert!(refused.is_retriable(), "{refused:?}");
}

/// A refusal retrying cannot mend is returned at once, not retried.
#[tokio::test]
async fn admin_calls_do_not_retry_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path()).await.unwrap();
    node.client()
        .admin()
        .create_topic("events", 1, &[])
        .await
        .unwrap();
    let sent = Arc::new(AtomicU32::new(0));
    let admin = counted_losing(node.client(), 0, sent.clone()).admin();
    let refused = admin.create_topic("events", 1, &[]).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::TopicAlreadyExists, "{refused:?}");
    assert_eq!(sent.load(Ordering::SeqCst), 1, "sent once");
}
