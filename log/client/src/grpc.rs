//! The gRPC transport: requests to a cluster's brokers, routed to the
//! broker that must answer each (`routing`).

use futures::future::BoxFuture;
use spool_protocol::proto::*;
use tonic::transport::Channel;

use crate::routing;
use crate::{ClientError, PendingProduce, Result, Transport};

/// Requests to a cluster over gRPC, through the broker at the bootstrap
/// address and the brokers its metadata names.
pub(crate) struct GrpcTransport {
    routes: routing::Routes,
    address: String,
}

impl GrpcTransport {
    /// Connects to the first broker of `addresses` that answers: one
    /// address or a comma-separated list (`host:port` or
    /// `http://host:port` each), as Kafka's `bootstrap.servers`, so a
    /// client starts while any one of them is up. The rest of the
    /// cluster is found through the broker reached.
    pub(crate) async fn connect(addresses: &str) -> Result<GrpcTransport> {
        let mut failures = Vec::new();
        let listed: Vec<&str> = addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        for &address in &listed {
            let others: Vec<&str> = listed.iter().copied().filter(|a| *a != address).collect();
            match GrpcTransport::connect_one(address, &others).await {
                Ok(transport) => return Ok(transport),
                Err(e) => failures.push(e),
            }
        }
        match failures.len() {
            0 => Err(ClientError::InvalidRequest(format!(
                "no broker address in `{addresses}`"
            ))),
            1 => Err(failures.remove(0)),
            _ => Err(ClientError::Transport {
                address: addresses.to_string(),
                reason: failures
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }

    /// Connects to `address`, keeping `others` (the rest of the bootstrap
    /// list) to turn to if it dies.
    async fn connect_one(address: &str, others: &[&str]) -> Result<GrpcTransport> {
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let transport_error = |e: &dyn std::fmt::Display| ClientError::Transport {
            address: address.to_string(),
            reason: e.to_string(),
        };
        let endpoint = Channel::from_shared(uri).map_err(|e| transport_error(&e))?;
        let channel = routing::tuned(endpoint)
            .connect()
            .await
            .map_err(|e| transport_error(&e))?;
        Ok(GrpcTransport {
            routes: routing::Routes::new(routing::spool_client(channel), address, others),
            address: address.to_string(),
        })
    }
}

/// One method per RPC, each routed as its kind of request must be.
macro_rules! rpc {
    // Produce, fetch, list-offsets and delete-records go to each partition's leader.
    (@grpc produce $routes:ident $address:ident $request:ident) => { rpc!(@routed produce $routes $address $request) };
    (@grpc fetch $routes:ident $address:ident $request:ident) => { rpc!(@routed fetch $routes $address $request) };
    (@grpc list_offsets $routes:ident $address:ident $request:ident) => { rpc!(@routed list_offsets $routes $address $request) };
    (@grpc write_txn_markers $routes:ident $address:ident $request:ident) => { rpc!(@routed write_txn_markers $routes $address $request) };
    (@grpc delete_records $routes:ident $address:ident $request:ident) => { rpc!(@routed delete_records $routes $address $request) };
    // Transaction requests go to the transactional id's coordinator; a
    // producer without one asks any broker for its id.
    (@grpc init_producer_id $routes:ident $address:ident $request:ident) => {
        match $request.transactional_id.is_empty() {
            true => $routes.call_any($request, rpc!(@send init_producer_id $address)).await,
            false => rpc!(@group init_producer_id $routes $address $request),
        }
    };
    (@grpc add_partitions_to_txn $routes:ident $address:ident $request:ident) => { rpc!(@group add_partitions_to_txn $routes $address $request) };
    (@grpc add_offsets_to_txn $routes:ident $address:ident $request:ident) => { rpc!(@group add_offsets_to_txn $routes $address $request) };
    (@grpc end_txn $routes:ident $address:ident $request:ident) => { rpc!(@group end_txn $routes $address $request) };
    (@grpc verify_txn_partition $routes:ident $address:ident $request:ident) => { rpc!(@group verify_txn_partition $routes $address $request) };
    (@grpc abort_transaction $routes:ident $address:ident $request:ident) => { rpc!(@group abort_transaction $routes $address $request) };
    (@grpc txn_offset_commit $routes:ident $address:ident $request:ident) => { rpc!(@group txn_offset_commit $routes $address $request) };
    // Each broker lists the transactional ids it coordinates.
    (@grpc list_transactions $routes:ident $address:ident $request:ident) => {
        $routes
            .call_all($request, rpc!(@send list_transactions $address), merge_transaction_listings)
            .await
    };
    (@grpc describe_transactions $routes:ident $address:ident $request:ident) => {
        describe_each_transaction($routes, $address, $request).await
    };
    // Topic creation and deletion go to the controller's leader.
    (@grpc create_topics $routes:ident $address:ident $request:ident) => { rpc!(@controller create_topics $routes $address $request) };
    (@grpc delete_topics $routes:ident $address:ident $request:ident) => { rpc!(@controller delete_topics $routes $address $request) };
    // Group requests go to the group's coordinator.
    (@grpc join_group $routes:ident $address:ident $request:ident) => { rpc!(@group join_group $routes $address $request) };
    (@grpc sync_group $routes:ident $address:ident $request:ident) => { rpc!(@group sync_group $routes $address $request) };
    (@grpc heartbeat $routes:ident $address:ident $request:ident) => { rpc!(@group heartbeat $routes $address $request) };
    (@grpc leave_group $routes:ident $address:ident $request:ident) => { rpc!(@group leave_group $routes $address $request) };
    (@grpc offset_commit $routes:ident $address:ident $request:ident) => { rpc!(@group offset_commit $routes $address $request) };
    (@grpc offset_fetch $routes:ident $address:ident $request:ident) => { rpc!(@group offset_fetch $routes $address $request) };
    (@grpc delete_group $routes:ident $address:ident $request:ident) => { rpc!(@group delete_group $routes $address $request) };
    (@group $name:ident $routes:ident $address:ident $request:ident) => {
        $routes.call_group($request, rpc!(@send $name $address)).await
    };
    // Each broker lists the groups it coordinates.
    (@grpc list_groups $routes:ident $address:ident $request:ident) => {
        $routes
            .call_all($request, rpc!(@send list_groups $address), merge_group_listings)
            .await
    };
    // Each group is described by its coordinator.
    (@grpc describe_groups $routes:ident $address:ident $request:ident) => {
        describe_each_group($routes, $address, $request).await
    };
    (@controller $name:ident $routes:ident $address:ident $request:ident) => {
        $routes.call_controller($request, rpc!(@send $name $address)).await
    };
    // One RPC on a given connection, as routing sends it.
    (@send $name:ident $address:ident) => {
        |mut client, request| async move {
            client
                .$name(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| status_error($address, status))
        }
    };
    // Any broker answers the rest alike.
    (@grpc $name:ident $routes:ident $address:ident $request:ident) => {
        $routes.call_any($request, rpc!(@send $name $address)).await
    };
    (@routed $name:ident $routes:ident $address:ident $request:ident) => {
        $routes.call($request, rpc!(@send $name $address)).await
    };
    ($($kind:ident $name:ident($request:ty) -> $response:ty;)*) => {
        impl Transport for GrpcTransport {
            $(
                fn $name(&self, request: $request) -> BoxFuture<'_, Result<$response>> {
                    Box::pin(async move {
                        let routes = &self.routes;
                        let address = self.address.as_str();
                        rpc!(@grpc $name routes address request)
                    })
                }
            )*

            fn produce_in_order(&self, request: ProduceRequest) -> BoxFuture<'_, Result<PendingProduce>> {
                Box::pin(self.routes.send_in_order(request))
            }
        }
    };
}

spool_protocol::with_rpcs!(rpc);

/// Merges the group listings of several brokers, each group once.
fn merge_group_listings(into: &mut ListGroupsResponse, part: ListGroupsResponse) {
    for listing in part.groups {
        if !into.groups.iter().any(|g| g.group_id == listing.group_id) {
            into.groups.push(listing);
        }
    }
    into.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
}

/// Merges the transaction listings of several brokers, each id once.
fn merge_transaction_listings(into: &mut ListTransactionsResponse, part: ListTransactionsResponse) {
    for listing in part.transactions {
        if !into
            .transactions
            .iter()
            .any(|t| t.transactional_id == listing.transactional_id)
        {
            into.transactions.push(listing);
        }
    }
    into.transactions
        .sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
}

/// DescribeTransactions split into one request per id, each sent to the
/// id's coordinator.
async fn describe_each_transaction(
    routes: &routing::Routes,
    address: &str,
    request: DescribeTransactionsRequest,
) -> Result<DescribeTransactionsResponse> {
    let mut transactions = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let one = routing::DescribeOneTransaction(id);
        let described = routes
            .call_group(
                one,
                |mut client, one: routing::DescribeOneTransaction| async move {
                    let response = client
                        .describe_transactions(DescribeTransactionsRequest {
                            transactional_ids: vec![one.0],
                        })
                        .await
                        .map_err(|status| status_error(address, status))?;
                    Ok(response
                        .into_inner()
                        .transactions
                        .into_iter()
                        .next()
                        .unwrap_or_default())
                },
            )
            .await?;
        transactions.push(described);
    }
    Ok(DescribeTransactionsResponse { transactions })
}

/// DescribeGroups split into one request per group, each sent to the
/// group's coordinator.
async fn describe_each_group(
    routes: &routing::Routes,
    address: &str,
    request: DescribeGroupsRequest,
) -> Result<DescribeGroupsResponse> {
    let mut groups = Vec::with_capacity(request.group_ids.len());
    for group_id in request.group_ids {
        let one = routing::DescribeOneGroup(group_id);
        let described = routes
            .call_group(
                one,
                |mut client, one: routing::DescribeOneGroup| async move {
                    let response = client
                        .describe_groups(DescribeGroupsRequest {
                            group_ids: vec![one.0],
                        })
                        .await
                        .map_err(|status| status_error(address, status))?;
                    Ok(response
                        .into_inner()
                        .groups
                        .into_iter()
                        .next()
                        .unwrap_or_default())
                },
            )
            .await?;
        groups.push(described);
    }
    Ok(DescribeGroupsResponse { groups })
}

/// A gRPC failure as a client error: the connection's or the call's
/// (unreachable, cut, timed out), which a retry may get past, or the
/// request's own (too large, not understood, not served by this broker's
/// version), which no retry mends.
fn status_error(address: &str, status: tonic::Status) -> ClientError {
    use tonic::Code;
    let reason = format!("{}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::Aborted
        | Code::Unknown
        | Code::Internal => ClientError::Transport {
            address: address.to_string(),
            reason,
        },
        _ => ClientError::InvalidRequest(format!("{address} refused the request: {reason}")),
    }
}
