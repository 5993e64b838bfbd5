//! Shared pieces of Brook's integration tests: a minimal raw Kafka client for byte-level
//! checks, and the paths of the external client toolchains installed by `./test.sh`.

// Test-support code: a failure here is a bug in a test, and panicking is how a test reports it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use brook_protocol::kafka_protocol::messages::{RequestHeader, ResponseHeader};
use brook_protocol::kafka_protocol::protocol::{
    encode_request_header_into_buffer, Decodable, HeaderVersion, Request, StrBytes,
};
use bytes::{Buf, Bytes, BytesMut};

/// A blocking connection that sends typed or raw requests and reads typed responses.
pub struct RawClient {
    stream: TcpStream,
    correlation_id: i32,
}

impl RawClient {
    pub fn connect(addr: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self {
            stream,
            correlation_id: 0,
        })
    }

    /// A second handle on the socket, e.g. to write from another thread.
    pub fn try_clone_stream(&self) -> TcpStream {
        self.stream.try_clone().expect("socket cloned")
    }

    /// Shuts the socket down both ways (unblocks a writer on another handle).
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Writes bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Encodes a framed request at `version`.
    pub fn encode<R: Request>(&mut self, version: i16, request: &R) -> Vec<u8> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("brook-tests")));
        let mut body = BytesMut::new();
        encode_request_header_into_buffer(&mut body, &header).expect("header encodes");
        request.encode(&mut body, version).expect("request encodes");
        let mut framed = (body.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        framed
    }

    /// Sends a request and reads its response.
    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> std::io::Result<R::Response> {
        let framed = self.encode(version, request);
        self.send_raw(&framed)?;
        let mut payload = self.read_frame()?;
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut payload, header_version).map_err(invalid)?;
        assert_eq!(
            header.correlation_id, self.correlation_id,
            "responses out of order"
        );
        R::Response::decode(&mut payload, version).map_err(invalid)
    }

    /// Reads the response to a request of type `R` at `version` sent earlier (with
    /// [`RawClient::encode`] and [`RawClient::send_raw`], for pipelined requests).
    pub fn read_response<R: Request>(&mut self, version: i16) -> std::io::Result<R::Response> {
        let mut payload = self.read_frame()?;
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        ResponseHeader::decode(&mut payload, header_version).map_err(invalid)?;
        R::Response::decode(&mut payload, version).map_err(invalid)
    }

    /// Reads one response frame (without its size prefix).
    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut payload = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut payload)?;
        Ok(Bytes::from(payload))
    }

    /// True if the broker closes the connection (EOF or reset) within the read timeout.
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                    )
                }
            }
        }
    }
}

/// Reads the correlation id at the front of a v0 response header.
pub fn correlation_id(payload: &mut Bytes) -> i32 {
    payload.get_i32()
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

/// The repository root (for scripts under `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The Python interpreter of the test venv (`BROOK_TEST_PYTHON`, else `.venv/bin/python`).
pub fn python() -> PathBuf {
    std::env::var_os("BROOK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

/// Fails with a pointer to `./test.sh` when an external client toolchain is missing.
pub fn require_tool(path: &std::path::Path, what: &str) {
    assert!(
        path.exists(),
        "{what} not found at {}: run ./test.sh, which installs the client toolchains",
        path.display()
    );
}

/// One HTTP/1.1 request to `addr` (no keep-alive); the status and the body.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    http_typed(
        addr,
        method,
        path,
        "application/vnd.schemaregistry.v1+json",
        body,
    )
}

/// [`http`] with the request body's content type given.
pub fn http_typed(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the HTTP listener");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("set a read timeout");
    let headers = [("Content-Type", content_type)];
    http_exchange(&mut s, addr, method, path, &headers, body)
}

/// One HTTP/1.1 request over `stream` (plain or TLS) with extra `headers`, the connection
/// closed after it: the status and the body.
pub fn http_exchange<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let body = body.unwrap_or("");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify after Connection: close; what came is enough.
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}
