//! The APIs and versions the listener serves, the dispatch of a request
//! to its translation, and ApiVersions itself.
//!
//! A version is listed only when its every field is translated: the
//! table below is both what ApiVersions advertises and what dispatch
//! accepts, so the two cannot drift apart. Where the crate decodes newer
//! versions than listed, the newer ones change meaning (topic ids instead
//! of names in Produce 13 and Fetch 13, the new consumer group protocol,
//! per-transaction epochs in EndTxn 5), so clients fall back to the
//! versions whose meaning spool serves.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::codes::UNSUPPORTED_VERSION;
use super::{admin, configs, data, groups, producers, transactions, Caller, Session};
use crate::{BrokerError, Result};

macro_rules! served_apis {
    ($($key:ident($request:ty) $min:literal..=$max:literal => $kind:ident $handler:path;)*) => {
        /// Every API served, with its lowest and highest version.
        pub(crate) const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[$((ApiKey::$key, $min, $max)),*];

        /// Decodes the body of a served request, answers it, and encodes
        /// the response frame (none for a Produce with acks=0).
        async fn dispatch(
            session: &Session,
            api: ApiKey,
            version: i16,
            correlation_id: i32,
            mut body: Bytes,
            caller: &Caller<'_>,
        ) -> Result<Option<BytesMut>> {
            match api {
                $(ApiKey::$key => {
                    let request = <$request>::decode(&mut body, version)
                        .map_err(|e| malformed(api, version, e))?;
                    let response = served_apis!(@call $kind $handler, session, request, version, caller);
                    response
                        .map(|r| response_frame(api, version, correlation_id, &r))
                        .transpose()
                })*
                _ => Err(BrokerError::InvalidRequest(format!("{api:?} is not served"))),
            }
        }

        /// Decodes the body of a served request without answering it.
        fn decode_body(api: ApiKey, version: i16, mut body: Bytes) -> Result<()> {
            match api {
                $(ApiKey::$key => <$request>::decode(&mut body, version)
                    .map(|_| ())
                    .map_err(|e| malformed(api, version, e)),)*
                _ => Err(BrokerError::InvalidRequest(format!("{api:?} is not served"))),
            }
        }
    };
    (@call always $handler:path, $session:expr, $request:expr, $version:expr, $caller:expr) => {
        Some($handler($session, $request, $version).await)
    };
    (@call maybe $handler:path, $session:expr, $request:expr, $version:expr, $caller:expr) => {
        $handler($session, $request, $version).await
    };
    (@call caller $handler:path, $session:expr, $request:expr, $version:expr, $caller:expr) => {
        Some($handler($session, $request, $version, $caller).await)
    };
}

served_apis! {
    Produce(ProduceRequest) 3..=9 => maybe data::produce;
    Fetch(FetchRequest) 4..=12 => always data::fetch;
    ListOffsets(ListOffsetsRequest) 1..=6 => always data::list_offsets;
    DeleteRecords(DeleteRecordsRequest) 0..=2 => always data::delete_records;
    Metadata(MetadataRequest) 0..=12 => always admin::metadata;
    OffsetCommit(OffsetCommitRequest) 2..=8 => always groups::offset_commit;
    OffsetFetch(OffsetFetchRequest) 1..=7 => always groups::offset_fetch;
    FindCoordinator(FindCoordinatorRequest) 0..=4 => always groups::find_coordinator;
    JoinGroup(JoinGroupRequest) 0..=9 => caller groups::join_group;
    Heartbeat(HeartbeatRequest) 0..=4 => always groups::heartbeat;
    LeaveGroup(LeaveGroupRequest) 0..=5 => always groups::leave_group;
    SyncGroup(SyncGroupRequest) 0..=5 => always groups::sync_group;
    DescribeGroups(DescribeGroupsRequest) 0..=5 => always groups::describe_groups;
    ListGroups(ListGroupsRequest) 0..=4 => always groups::list_groups;
    DeleteGroups(DeleteGroupsRequest) 0..=2 => always groups::delete_groups;
    OffsetDelete(OffsetDeleteRequest) 0..=0 => always groups::offset_delete;
    ApiVersions(ApiVersionsRequest) 0..=3 => always api_versions;
    CreateTopics(CreateTopicsRequest) 2..=7 => always admin::create_topics;
    DeleteTopics(DeleteTopicsRequest) 1..=6 => always admin::delete_topics;
    InitProducerId(InitProducerIdRequest) 0..=4 => always transactions::init_producer_id;
    AddPartitionsToTxn(AddPartitionsToTxnRequest) 0..=3 => always transactions::add_partitions;
    AddOffsetsToTxn(AddOffsetsToTxnRequest) 0..=3 => always transactions::add_offsets;
    EndTxn(EndTxnRequest) 0..=3 => always transactions::end_txn;
    TxnOffsetCommit(TxnOffsetCommitRequest) 0..=3 => always transactions::txn_offset_commit;
    DescribeTransactions(DescribeTransactionsRequest) 0..=0 => always transactions::describe_transactions;
    ListTransactions(ListTransactionsRequest) 0..=0 => always transactions::list_transactions;
    DescribeProducers(DescribeProducersRequest) 0..=0 => always producers::describe_producers;
    WriteTxnMarkers(WriteTxnMarkersRequest) 1..=1 => always producers::write_txn_markers;
    DescribeConfigs(DescribeConfigsRequest) 1..=4 => always configs::describe_configs;
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest) 0..=1 => always configs::incremental_alter_configs;
    CreatePartitions(CreatePartitionsRequest) 0..=3 => always admin::create_partitions;
}

/// A request frame split into what dispatch needs.
enum Framed {
    /// Answered already: an ApiVersions newer than served (KIP-511).
    Answered(BytesMut),
    Request {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        header: RequestHeader,
        body: Bytes,
    },
}

/// Reads a request frame's header (without the length prefix), refusing
/// an API or version that is not served.
fn parse_frame(mut frame: Bytes) -> Result<Framed> {
    if frame.len() < 8 {
        return Err(BrokerError::InvalidRequest(format!(
            "a request frame of {} bytes, shorter than a request header",
            frame.len()
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(key)
        .map_err(|()| BrokerError::InvalidRequest(format!("unknown API key {key}")))?;
    let served = SUPPORTED_APIS
        .iter()
        .any(|&(served, min, max)| served == api && (min..=max).contains(&version));
    if !served {
        // KIP-511: a client may open with an ApiVersions newer than the
        // broker's; it must get error 35 and the versions in a v0 body to
        // retry with, never a closed connection.
        if api == ApiKey::ApiVersions {
            let response = version_table().with_error_code(UNSUPPORTED_VERSION);
            return response_frame(api, 0, correlation_id, &response).map(Framed::Answered);
        }
        return Err(BrokerError::InvalidRequest(format!(
            "{api:?} v{version} is not served (see docs/kafka-compatibility.md)"
        )));
    }
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| malformed(api, version, e))?;
    Ok(Framed::Request {
        api,
        version,
        correlation_id,
        header,
        body: frame,
    })
}

/// A response frame to come (none for a Produce with acks=0); an error
/// closes the connection.
pub(super) type PendingAnswer = futures::future::BoxFuture<'static, Result<Option<BytesMut>>>;

/// Whether a request frame (without its length prefix) is a Produce: the
/// one request a connection pipelines (see `connection`).
pub(super) fn is_produce(frame: &[u8]) -> bool {
    frame.len() >= 2 && i16::from_be_bytes([frame[0], frame[1]]) == ApiKey::Produce as i16
}

/// Proposes the batches of a Produce frame (as [`answer`] would) and
/// returns its response to come, which owns all it needs; any other
/// frame is answered in full first.
pub(super) async fn propose(session: &Session, host: &str, frame: Bytes) -> Result<PendingAnswer> {
    let framed = parse_frame(frame)?;
    let Framed::Request {
        api: ApiKey::Produce,
        version,
        correlation_id,
        mut body,
        ..
    } = framed
    else {
        let answered = answer_framed(session, host, framed).await;
        return Ok(Box::pin(std::future::ready(answered)));
    };
    let request = ProduceRequest::decode(&mut body, version)
        .map_err(|e| malformed(ApiKey::Produce, version, e))?;
    let answer = data::propose_produce(session, request, version).await;
    Ok(Box::pin(async move {
        let response = answer.await;
        response
            .map(|r| response_frame(ApiKey::Produce, version, correlation_id, &r))
            .transpose()
    }))
}

/// Answers one request frame (without its length prefix) that came from
/// `host`. An error means the request cannot be answered and the
/// connection is to be closed.
pub(super) async fn answer(
    session: &Session,
    host: &str,
    frame: Bytes,
) -> Result<Option<BytesMut>> {
    answer_framed(session, host, parse_frame(frame)?).await
}

async fn answer_framed(session: &Session, host: &str, framed: Framed) -> Result<Option<BytesMut>> {
    match framed {
        Framed::Answered(response) => Ok(Some(response)),
        Framed::Request {
            api,
            version,
            correlation_id,
            header,
            body,
        } => {
            let caller = Caller {
                client_id: header.client_id.as_deref().unwrap_or_default(),
                host,
            };
            dispatch(session, api, version, correlation_id, body, &caller).await
        }
    }
}

/// Decodes one request frame (without its length prefix) as the listener
/// does before answering it, and answers nothing: `Ok` for a request the
/// listener would dispatch or answer, an error for one that would close
/// the connection. The fuzzing target's way in (`fuzz/`): whatever the
/// bytes, this returns, and never panics.
pub fn decode_request(frame: Bytes) -> Result<()> {
    match parse_frame(frame)? {
        Framed::Answered(_) => Ok(()),
        Framed::Request {
            api, version, body, ..
        } => decode_body(api, version, body),
    }
}

async fn api_versions(
    _session: &Session,
    _request: ApiVersionsRequest,
    _version: i16,
) -> ApiVersionsResponse {
    version_table()
}

fn version_table() -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|&(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}

/// The length-prefixed frame of `response` to a request with
/// `correlation_id`.
fn response_frame<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> Result<BytesMut> {
    let header_version = api.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let unencodable = |e: anyhow::Error| {
        BrokerError::InvalidRequest(format!("cannot encode a {api:?} v{version} response: {e}"))
    };
    let size = header.compute_size(header_version).map_err(unencodable)?
        + response.compute_size(version).map_err(unencodable)?;
    let mut frame = BytesMut::with_capacity(4 + size);
    frame.put_i32(size as i32);
    header
        .encode(&mut frame, header_version)
        .map_err(unencodable)?;
    response.encode(&mut frame, version).map_err(unencodable)?;
    Ok(frame)
}

fn malformed(api: ApiKey, version: i16, e: anyhow::Error) -> BrokerError {
    BrokerError::InvalidRequest(format!("a malformed {api:?} v{version} request: {e}"))
}
