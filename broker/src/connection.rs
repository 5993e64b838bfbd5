//! One client connection: frames in, responses out, strictly in request order.
//!
//! A reader task splits the socket's bytes into frames as they arrive (so pipelined requests are
//! read without waiting for earlier responses) and hands them over through a bounded channel.
//! The connection task handles them one at a time, in order, which keeps appends from one
//! producer connection in the order they were sent. A writer task sends the replies strictly
//! in request order, batching what is ready into few write calls; a produce waiting for its
//! fsync (acks=all) is a reply that completes later, so the batches after it are appended
//! meanwhile and share the next fsync. Fetch record sets are written to the socket straight
//! from the log's memory map with vectored writes, never copied into the response.
//! `acks=0` produce requests get no response. Any framing
//! or decoding error closes the connection, as Kafka does.
//!
//! Memory per connection is bounded whatever the client does. Requests are read ahead only up
//! to [`READ_AHEAD_BYTES`] (plus the frame being read), and the broker-wide
//! `queued.max.request.bytes` is taken before a frame's body is read. Replies are queued only
//! up to [`QUEUED_RESPONSE_BYTES`] (plus one reply): a client that stops reading stops having
//! its requests handled, as Kafka mutes a connection while a response is outstanding, and is
//! closed after `connections.max.idle.ms` without progress. Until a connection has sent
//! ApiVersions or SaslHandshake, its frames are capped at [`pre_handshake_max_frame`].
//!
//! SSL and SASL_SSL listeners' connections start with a TLS handshake (bounded by
//! [`TLS_HANDSHAKE_TIMEOUT`]); the rest is the same over the TLS stream. On SASL listeners
//! only the SASL APIs and ApiVersions are served until the client has authenticated, with
//! frames capped at `sasl.server.max.receive.size` (`crate::auth::sasl`).

use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::frame::{peek_frame_size, SIZE_PREFIX};
use brook_protocol::kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use brook_protocol::request::{decode_body, decode_header, peek_fixed_header, RequestFrame};
use brook_protocol::response::{
    encode_raw_response, encode_response, encode_response_shared, ResponseParts,
};
use brook_protocol::{api_versions, legacy_produce, DecodeError, ErrorCode};
use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

use crate::auth::principal::{certificate_subject, Principal};
use crate::auth::sasl::Session;
use crate::config::BrokerConfig;
use crate::handlers::{self, Ctx};
use crate::listeners::Advertised;
use crate::state::BrokerState;

/// How long a client may take to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames read ahead of the one being handled (also bounded in bytes, below).
const READ_AHEAD: usize = 64;
/// Request bytes one connection reads ahead of the request being handled, beyond one frame.
const READ_AHEAD_BYTES: usize = 1024 * 1024;
/// Reply bytes queued for one connection, beyond one reply. Once reached, no further request
/// of the connection is handled until the client has read what is queued.
const QUEUED_RESPONSE_BYTES: usize = 1024 * 1024;
/// What a reply still waiting for its fsync is counted as (its final size is small).
const PENDING_REPLY_COST: usize = 1024;
/// Flush encoded responses once this many bytes are pending, even if more requests wait.
const WRITE_BATCH: usize = 64 * 1024;
/// Pieces smaller than this are copied together into one buffer before writing; larger ones
/// (record sets from the log) are written from where they are, by vectored writes.
const COALESCE_BELOW: usize = 16 * 1024;
/// Pieces handed to one vectored write call.
const MAX_WRITE_PIECES: usize = 64;
/// Initial read buffer: small, so a thousand idle connections cost little memory. It grows to
/// whole frames as they arrive (`decode_frame` reserves a frame's size once it is known).
const READ_BUFFER: usize = 8 * 1024;

/// The largest frame a connection may send before its first ApiVersions or SaslHandshake:
/// enough for a produce request of one `message.max.bytes` batch (clients configured with a
/// fixed API version skip ApiVersions), and far below `socket.request.max.bytes`.
pub(crate) fn pre_handshake_max_frame(config: &BrokerConfig) -> usize {
    let message = usize::try_from(config.message_max_bytes).unwrap_or(0);
    (message.max(1024 * 1024) + 64 * 1024).min(config.socket_request_max_bytes)
}

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
enum CloseReason {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Encode(#[from] brook_protocol::response::EncodeError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no request for {0:?} (connections.max.idle.ms)")]
    Idle(Duration),
    #[error("the client read none of its queued responses for {0:?} (connections.max.idle.ms)")]
    Stalled(Duration),
    #[error("{0}")]
    Unauthenticated(String),
}

/// A response in the making. Most are encoded while their request is handled; a produce
/// that waits for its fsync (acks=all) completes later, while the requests after it are
/// already being handled.
enum Reply {
    Now(ResponseParts),
    Later(Pin<Box<dyn Future<Output = Result<ResponseParts, CloseReason>> + Send>>),
}

impl Reply {
    /// Bytes this reply is counted as against [`QUEUED_RESPONSE_BYTES`].
    fn cost(&self) -> usize {
        match self {
            Reply::Now(parts) => parts.len(),
            Reply::Later(_) => PENDING_REPLY_COST,
        }
    }
}

/// A request frame and the read-ahead room it holds until it is handled.
struct Frame {
    payload: Bytes,
    _room: Room,
}

/// Room taken from the connection's and the broker's request budgets; freed on drop.
struct Room {
    _connection: Option<OwnedSemaphorePermit>,
    _broker: Option<OwnedSemaphorePermit>,
}

/// Permits for `bytes` from a budget of `total`: a frame larger than the whole budget takes all
/// of it, so it goes ahead once nothing else holds room. Budgets are never closed, so this is
/// always `Some`.
async fn take(budget: &Arc<Semaphore>, total: usize, bytes: usize) -> Option<OwnedSemaphorePermit> {
    let n = u32::try_from(bytes.clamp(1, total)).unwrap_or(u32::MAX);
    budget.clone().acquire_many_owned(n).await.ok()
}

/// Serves one connection until the peer closes it, an error closes it, or shutdown.
pub(crate) async fn serve(
    stream: TcpStream,
    listener: Arc<Advertised>,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream.peer_addr().ok();
    let _open = state.metrics.connection();
    let _ = stream.set_nodelay(true);
    let protocol = listener.protocol;
    let security = state.security.listener(&listener.listener);
    let session = |principal| {
        if protocol.uses_sasl() {
            Session::with_sasl(
                security.sasl_mechanisms.clone(),
                state.config.connections_max_reauth_ms,
                security.oauth.clone(),
            )
        } else {
            Session::without_sasl(principal)
        }
    };
    if !protocol.uses_tls() {
        let session = session(Principal::anonymous());
        let (read_half, write_half) = stream.into_split();
        let io = Io {
            read_half,
            write_half,
            peer,
        };
        return run(io, session, listener, state.clone(), shutdown).await;
    }
    // Loaded at start whenever a listener uses TLS.
    let Some(tls) = &security.tls else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let stream = tokio::select! {
        biased;
        _ = shutdown.changed() => return,
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::info!(?peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(?peer, "TLS handshake not completed in {TLS_HANDSHAKE_TIMEOUT:?}");
                return;
            }
        },
    };
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first());
    let principal = match certificate {
        // SASL_SSL authenticates with SASL; the certificate only proves the channel.
        Some(der) if !protocol.uses_sasl() => {
            let name = certificate_subject(der)
                .and_then(|subject| security.principal_rules.name_of(&subject));
            match name {
                Ok(name) => Principal::user(&name),
                Err(reason) => {
                    tracing::info!(?peer, %reason, "TLS client refused");
                    return;
                }
            }
        }
        _ => Principal::anonymous(),
    };
    let (read_half, write_half) = tokio::io::split(stream);
    let io = Io {
        read_half,
        write_half,
        peer,
    };
    run(io, session(principal), listener, state.clone(), shutdown).await
}

/// A connection's two directions, whatever carries them (TCP or TLS over TCP).
struct Io<R, W> {
    read_half: R,
    write_half: W,
    peer: Option<std::net::SocketAddr>,
}

/// Serves requests over `io` (see the module docs).
async fn run<R, W>(
    io: Io<R, W>,
    session: Session,
    listener: Arc<Advertised>,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Io {
        read_half,
        write_half,
        peer,
    } = io;
    let (frames_tx, mut frames) = mpsc::channel(READ_AHEAD);
    let limits = ReadLimits {
        max_frame: state.config.socket_request_max_bytes,
        pre_handshake_max_frame: pre_handshake_max_frame(&state.current()),
        unauthenticated_max_frame: listener.protocol.uses_sasl().then(|| {
            (
                state.config.sasl_server_max_receive_size,
                session.authenticated_flag(),
            )
        }),
        connection: Arc::new(Semaphore::new(READ_AHEAD_BYTES)),
        broker: state.queued_requests.clone(),
    };
    let session = Mutex::new(session);
    let reader = tokio::spawn(read_frames(read_half, frames_tx, limits));
    let (replies_tx, replies) = mpsc::channel(READ_AHEAD);
    let mut writer = tokio::spawn(write_replies(write_half, replies));
    let reply_budget = Arc::new(Semaphore::new(QUEUED_RESPONSE_BYTES));
    let idle = Duration::from_millis(state.config.connections_max_idle_ms);

    let result: Result<(), CloseReason> = async {
        loop {
            let idle_deadline = Instant::now() + idle;
            let frame = tokio::select! {
                biased;
                _ = shutdown.changed() => return Ok(()),
                frame = frames.recv() => frame,
                _ = tokio::time::sleep_until(idle_deadline) => return Err(CloseReason::Idle(idle)),
            };
            let Some(frame) = frame else {
                return Ok(());
            };
            let frame = frame?;
            let reply = handle_frame(&state, &listener, &session, frame.payload, peer).await?;
            if let Some(reply) = reply {
                // Wait for room among the queued replies: a client that does not read stops
                // being served instead of making the broker buffer without bound.
                let room = tokio::select! {
                    biased;
                    _ = shutdown.changed() => return Ok(()),
                    room = take(&reply_budget, QUEUED_RESPONSE_BYTES, reply.cost()) => room,
                    _ = tokio::time::sleep(idle) => return Err(CloseReason::Stalled(idle)),
                };
                if replies_tx.send((reply, room)).await.is_err() {
                    // The writer stopped: its error is reported below.
                    return Ok(());
                }
            }
            if session.lock().must_close() {
                // A refused authentication: its answer is sent, then the connection closed.
                return Ok(());
            }
        }
    }
    .await;
    reader.abort();
    drop(replies_tx);
    // Let the writer send what is ready (bounded: a pending produce waits at most its
    // timeout), unless we are shutting down or the client stopped reading.
    let written = if matches!(result, Err(CloseReason::Stalled(_))) {
        writer.abort();
        Ok(())
    } else {
        tokio::select! {
            w = &mut writer => w.unwrap_or(Ok(())),
            _ = shutdown.changed() => { writer.abort(); Ok(()) }
            _ = tokio::time::sleep(idle) => { writer.abort(); Ok(()) }
        }
    };
    match result.and(written) {
        Ok(()) => tracing::debug!(?peer, "connection closed"),
        Err(CloseReason::Io(e)) => tracing::debug!(?peer, error = %e, "connection ended"),
        Err(e @ (CloseReason::Idle(_) | CloseReason::Stalled(_))) => {
            tracing::debug!(?peer, reason = %e, "closing connection")
        }
        Err(e) => tracing::info!(?peer, error = %e, "closing connection"),
    }
}

/// Writes replies strictly in request order, batching what is ready into few write calls.
/// Each reply's room in the connection's reply budget is freed once it is written.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut write_half: W,
    mut replies: mpsc::Receiver<(Reply, Option<OwnedSemaphorePermit>)>,
) -> Result<(), CloseReason> {
    let mut out = Outgoing::default();
    let mut rooms = Vec::new();
    while let Some((reply, room)) = replies.recv().await {
        let parts = match reply {
            Reply::Now(parts) => parts,
            Reply::Later(pending) => pending.await?,
        };
        out.push(parts);
        rooms.push(room);
        if replies.is_empty() || out.len >= WRITE_BATCH {
            out.write_to(&mut write_half).await?;
            rooms.clear();
        }
    }
    out.write_to(&mut write_half).await?;
    Ok(())
}

/// Bytes waiting to be written: small encoded pieces copied together, large record sets kept
/// as the log's own memory and written from there.
#[derive(Default)]
struct Outgoing {
    queue: VecDeque<Bytes>,
    /// Small pieces after the last queued one; reused once what it was split into is written.
    small: BytesMut,
    len: usize,
}

impl Outgoing {
    fn push(&mut self, reply: ResponseParts) {
        self.len += reply.len();
        for part in reply.into_parts() {
            if part.len() < COALESCE_BELOW {
                self.small.extend_from_slice(&part);
            } else {
                self.close_small();
                self.queue.push_back(part);
            }
        }
    }

    fn close_small(&mut self) {
        if !self.small.is_empty() {
            self.queue.push_back(self.small.split().freeze());
        }
    }

    async fn write_to<W: AsyncWrite + Unpin>(&mut self, socket: &mut W) -> std::io::Result<()> {
        self.close_small();
        while !self.queue.is_empty() {
            let slices: Vec<IoSlice<'_>> = self
                .queue
                .iter()
                .take(MAX_WRITE_PIECES)
                .map(|b| IoSlice::new(b))
                .collect();
            let mut written = socket.write_vectored(&slices).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.len = self.len.saturating_sub(written);
            while written > 0 {
                let Some(front) = self.queue.front_mut() else {
                    break;
                };
                if written >= front.len() {
                    written -= front.len();
                    self.queue.pop_front();
                } else {
                    front.advance(written);
                    written = 0;
                }
            }
        }
        // TLS buffers what it encrypts: push it to the socket before waiting for more replies.
        socket.flush().await?;
        // The buffer may have grown for a burst; an idle connection keeps only a small one.
        if self.small.capacity() > WRITE_BATCH {
            self.small = BytesMut::new();
        }
        Ok(())
    }
}

/// How much a connection may read, and from which budgets.
struct ReadLimits {
    /// `socket.request.max.bytes`.
    max_frame: usize,
    /// The cap before the first ApiVersions or SaslHandshake.
    pre_handshake_max_frame: usize,
    /// On SASL listeners: `sasl.server.max.receive.size`, the cap until the flag (set once the
    /// client has authenticated) is set.
    unauthenticated_max_frame: Option<(usize, Arc<AtomicBool>)>,
    /// [`READ_AHEAD_BYTES`] of this connection.
    connection: Arc<Semaphore>,
    /// `queued.max.request.bytes`, shared by every connection, when set.
    broker: Option<(Arc<Semaphore>, usize)>,
}

impl ReadLimits {
    /// The largest frame accepted now. Read again while waiting for a frame's size: the flag
    /// is set before the answer that lets the client send larger frames.
    fn max_frame(&self, handshake_seen: bool) -> usize {
        match &self.unauthenticated_max_frame {
            Some((cap, authenticated)) if !authenticated.load(Ordering::Acquire) => *cap,
            _ if handshake_seen => self.max_frame,
            _ => self.pre_handshake_max_frame,
        }
    }

    async fn room_for(&self, size: usize) -> Room {
        let connection = take(&self.connection, READ_AHEAD_BYTES, size).await;
        let broker = match &self.broker {
            Some((budget, total)) => take(budget, *total, size).await,
            None => None,
        };
        Room {
            _connection: connection,
            _broker: broker,
        }
    }
}

/// Reads frames: the size prefix first (checked against the limits before anything is
/// allocated), then room in the read-ahead budgets, then the body.
async fn read_frames<R: AsyncRead + Unpin>(
    mut read_half: R,
    tx: mpsc::Sender<Result<Frame, CloseReason>>,
    limits: ReadLimits,
) {
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut handshake_seen = false;
    loop {
        let size = loop {
            match peek_frame_size(&buf, limits.max_frame(handshake_seen)) {
                Ok(Some(size)) => break size,
                Ok(None) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
            if !fill(&mut read_half, &mut buf, &tx).await {
                return;
            }
        };
        let room = limits.room_for(size).await;
        let whole = SIZE_PREFIX + size;
        if buf.len() < whole {
            buf.reserve(whole - buf.len());
        }
        while buf.len() < whole {
            if !fill(&mut read_half, &mut buf, &tx).await {
                return;
            }
        }
        buf.advance(SIZE_PREFIX);
        let payload = buf.split_to(size).freeze();
        if let Some((key, _, _)) = peek_fixed_header(&payload) {
            handshake_seen |=
                key == ApiKey::ApiVersions as i16 || key == ApiKey::SaslHandshake as i16;
        }
        if tx
            .send(Ok(Frame {
                payload,
                _room: room,
            }))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Reads more bytes into `buf`; false once the peer closed or the socket failed (reported).
async fn fill<R: AsyncRead + Unpin>(
    read_half: &mut R,
    buf: &mut BytesMut,
    tx: &mpsc::Sender<Result<Frame, CloseReason>>,
) -> bool {
    if buf.capacity() - buf.len() < READ_BUFFER / 2 {
        buf.reserve(READ_BUFFER);
    }
    match read_half.read_buf(buf).await {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => {
            let _ = tx.send(Err(e.into())).await;
            false
        }
    }
}

async fn handle_frame(
    state: &Arc<BrokerState>,
    listener: &Advertised,
    session: &Mutex<Session>,
    payload: Bytes,
    peer: Option<std::net::SocketAddr>,
) -> Result<Option<Reply>, CloseReason> {
    let mut out = BytesMut::new();
    if session.lock().expects_raw_token() {
        return raw_sasl_round(state, listener, session, payload, peer).await;
    }
    let api_versions_range = handlers::supported_versions(ApiKey::ApiVersions);
    if let (Some((key, version, correlation_id)), Some(range)) =
        (peek_fixed_header(&payload), api_versions_range)
    {
        if key == ApiKey::ApiVersions as i16 && !(range.min <= version && version <= range.max) {
            // KIP-511: answer with a v0 body that tells the client which versions to retry
            // with, reading no more of the header than its fixed part.
            let body = api_versions::unsupported_version_response(range);
            encode_response(
                &mut out,
                ApiKey::ApiVersions,
                0,
                correlation_id,
                &ResponseKind::ApiVersions(body),
            )?;
            return Ok(Some(Reply::Now(out.into())));
        }
    }
    let frame = decode_header(payload)?;
    let key = frame.api_key;
    let version = frame.header.request_api_version;
    let correlation_id = frame.header.correlation_id;
    session
        .lock()
        .admits(key, Instant::now().into_std())
        .map_err(CloseReason::Unauthenticated)?;
    let Some(range) = handlers::supported_versions(key) else {
        return Err(CloseReason::Unsupported(format!(
            "API {key:?} is not supported"
        )));
    };
    if !(range.min <= version && version <= range.max) {
        return Err(CloseReason::Unsupported(format!(
            "{key:?} v{version} is not supported"
        )));
    }
    if key == ApiKey::Produce && version < 3 {
        answer_legacy_produce(&frame, &mut out)?;
        return Ok((!out.is_empty()).then_some(Reply::Now(out.into())));
    }
    let request = decode_body(&frame)?;
    let started = std::time::Instant::now();
    let span = tracing::debug_span!("request", api = ?key, version, correlation_id, client = frame.header.client_id.as_deref().unwrap_or(""));
    let ctx = Ctx {
        state,
        header: &frame.header,
        peer,
        listener,
        session,
        identity: handlers::Identity::of(state, session, peer),
    };
    if let RequestKind::Produce(produce) = request {
        let acks = produce.acks;
        // Appends happen now, in request order; the fsync wait (acks=all) overlaps with the
        // requests that follow.
        let gate = handlers::transaction_gate(state, &produce).await;
        let pending = span.in_scope(|| handlers::begin_produce(&ctx, produce, gate));
        if acks == 0 {
            return Ok(None);
        }
        let metrics = state.metrics.clone();
        return Ok(Some(Reply::Later(Box::pin(async move {
            let response = ResponseKind::Produce(pending.finish().await);
            metrics.request(key, &response, started.elapsed());
            let mut out = BytesMut::new();
            encode_response(&mut out, key, version, correlation_id, &response)?;
            Ok(out.into())
        }))));
    }
    let response = handlers::dispatch(&ctx, request).instrument(span).await;
    state.metrics.request(key, &response, started.elapsed());
    if let ResponseKind::Fetch(fetch) = &response {
        count_fetched(state, fetch);
        // Record sets go from the log's memory map to the socket without a copy.
        let shared: Vec<Bytes> = fetch
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|p| p.records.clone())
            .collect();
        let parts = encode_response_shared(key, version, correlation_id, fetch, &shared)?;
        return Ok(Some(Reply::Now(parts)));
    }
    encode_response(&mut out, key, version, correlation_id, &response)?;
    Ok(Some(Reply::Now(out.into())))
}

/// A bare SASL message after a version 0 SaslHandshake, answered with a bare frame. A failure
/// closes the connection without an answer, as Kafka does for this form.
async fn raw_sasl_round(
    state: &Arc<BrokerState>,
    listener: &Advertised,
    session: &Mutex<Session>,
    payload: Bytes,
    peer: Option<std::net::SocketAddr>,
) -> Result<Option<Reply>, CloseReason> {
    let header = brook_protocol::kafka_protocol::messages::RequestHeader::default();
    let ctx = Ctx {
        state,
        header: &header,
        peer,
        listener,
        session,
        identity: handlers::Identity::default(),
    };
    let round = handlers::sasl_round(&ctx, &payload, true)
        .await
        .map_err(|refusal| CloseReason::Unauthenticated(refusal.message))?;
    let mut out = BytesMut::with_capacity(SIZE_PREFIX + round.reply.len());
    let size = i32::try_from(round.reply.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&round.reply);
    Ok(Some(Reply::Now(out.into())))
}

/// Adds what a Fetch response returns to its topics' traffic (batch headers only).
fn count_fetched(
    state: &BrokerState,
    fetch: &brook_protocol::kafka_protocol::messages::FetchResponse,
) {
    for t in &fetch.responses {
        let (mut records, mut bytes) = (0u64, 0u64);
        for p in &t.partitions {
            if let Some(data) = &p.records {
                bytes += data.len() as u64;
                records += brook_protocol::batch::Batches::new(data)
                    .filter(|b| !b.is_control())
                    .map(|b| u64::try_from(b.records_count()).unwrap_or(0))
                    .sum::<u64>();
            }
        }
        if bytes > 0 {
            // v13+ names topics by id only.
            let topic = if t.topic.is_empty() {
                state.topics.get_by_id(t.topic_id)
            } else {
                state.topics.get(t.topic.as_str())
            };
            if let Some(topic) = topic {
                topic.traffic.fetched(records, bytes);
            }
        }
    }
}

/// Produce v0-2 carries message sets Brook does not store: every partition gets
/// UNSUPPORTED_VERSION (and acks=0 gets nothing, as always).
fn answer_legacy_produce(frame: &RequestFrame, out: &mut BytesMut) -> Result<(), CloseReason> {
    let request = legacy_produce::decode(frame.body.clone())?;
    if request.acks != 0 {
        let body = legacy_produce::encode_error_response(
            &request,
            frame.header.request_api_version,
            ErrorCode::UnsupportedVersion.code(),
        );
        encode_raw_response(out, frame.header.correlation_id, &body);
    }
    Ok(())
}
