//! Pieces shared by client and server: TLS crypto provider, transport tuning,
//! key logging, request parsing.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rustls::crypto::CryptoProvider;

/// ALPN of the quic-interop-runner's HTTP/0.9 test application.
pub const ALPN_HQ: &str = "hq-interop";

/// Stream reset codes used by the server (HTTP-status-like, so they read well in logs).
pub const CODE_BAD_REQUEST: u32 = 400;
pub const CODE_FORBIDDEN: u32 = 403;
pub const CODE_NOT_FOUND: u32 = 404;
pub const CODE_INTERNAL: u32 = 500;

/// Congestion controllers quinn ships.
#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum Cc {
    Cubic,
    Newreno,
    Bbr,
}

/// Transport/TLS options common to both roles.
#[derive(Args, Debug, Clone)]
pub struct CommonOpts {
    /// Offer only TLS13_CHACHA20_POLY1305_SHA256 (Initial packets still use AES-128-GCM, as QUIC requires).
    #[arg(long)]
    pub chacha20: bool,

    /// ALPN protocol(s) to offer/accept (repeatable).
    #[arg(long = "alpn", value_name = "PROTO", default_value = ALPN_HQ)]
    pub alpn: Vec<String>,

    /// Initial path MTU (UDP payload bytes, >= 1200); MTU discovery stays on.
    #[arg(long, value_name = "BYTES")]
    pub initial_mtu: Option<u16>,

    /// Fixed path MTU (UDP payload bytes, >= 1200) in both directions: sets the initial MTU,
    /// turns MTU discovery off, and advertises it as max_udp_payload_size so the peer's
    /// packets are capped too.
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u16>,

    /// Idle timeout in seconds (max_idle_timeout transport parameter).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub idle_timeout: u64,

    /// Per-stream receive window in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub stream_window: u32,

    /// Connection receive (and send) window in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 32 << 20)]
    pub conn_window: u32,

    /// Congestion controller.
    #[arg(long, value_enum, default_value_t = Cc::Cubic)]
    pub cc: Cc,

    /// Test case name (quic-interop-runner); unsupported ones exit 127.
    #[arg(long, env = "TESTCASE", value_name = "NAME")]
    pub testcase: Option<String>,
}

/// The one crypto provider (ring), optionally restricted to ChaCha20-Poly1305.
pub fn crypto_provider(chacha20: bool) -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    if chacha20 {
        p.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256];
    } else {
        p.cipher_suites.retain(|s| s.tls13().is_some());
    }
    Arc::new(p)
}

/// QUIC Initial packets are always protected with AES-128-GCM (RFC 9001 §5), whatever
/// suites TLS negotiates, so quinn is told explicitly.
pub fn initial_suite() -> rustls::quic::Suite {
    rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())
        .expect("ring provides a QUIC-capable TLS13_AES_128_GCM_SHA256")
}

/// A key log writer when SSLKEYLOGFILE is set (rustls reads the variable itself).
pub fn key_log() -> Option<Arc<dyn rustls::KeyLog>> {
    match std::env::var_os("SSLKEYLOGFILE") {
        Some(p) if !p.is_empty() => Some(Arc::new(rustls::KeyLogFile::new())),
        _ => None,
    }
}

pub fn alpn_list(opts: &CommonOpts) -> Vec<Vec<u8>> {
    opts.alpn.iter().map(|a| a.as_bytes().to_vec()).collect()
}

pub fn transport_config(opts: &CommonOpts, server: bool) -> Result<quinn::TransportConfig> {
    use quinn::{IdleTimeout, VarInt};
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(VarInt::from_u32(opts.stream_window));
    t.receive_window(VarInt::from_u32(opts.conn_window));
    t.send_window(opts.conn_window as u64);
    t.max_idle_timeout(Some(
        IdleTimeout::try_from(Duration::from_secs(opts.idle_timeout)).context("--idle-timeout")?,
    ));
    t.keep_alive_interval(None);
    if server {
        t.max_concurrent_bidi_streams(VarInt::from_u32(1000));
        t.max_concurrent_uni_streams(VarInt::from_u32(0));
    } else {
        // hq-interop never has the server open streams.
        t.max_concurrent_bidi_streams(VarInt::from_u32(0));
        t.max_concurrent_uni_streams(VarInt::from_u32(0));
    }
    if let Some(m) = opts.initial_mtu {
        if m < 1200 {
            bail!("--initial-mtu must be >= 1200");
        }
        t.initial_mtu(m);
    }
    if let Some(m) = opts.mtu {
        if m < 1200 {
            bail!("--mtu must be >= 1200");
        }
        t.initial_mtu(m);
        t.mtu_discovery_config(None);
    }
    match opts.cc {
        Cc::Cubic => {
            t.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()));
        }
        Cc::Newreno => {
            t.congestion_controller_factory(Arc::new(quinn::congestion::NewRenoConfig::default()));
        }
        Cc::Bbr => {
            t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
        }
    }
    Ok(t)
}

/// Bind a UDP socket and build a quinn endpoint on it (with --mtu applied to the
/// endpoint-wide max_udp_payload_size transport parameter).
pub fn endpoint(
    opts: &CommonOpts,
    bind: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> Result<quinn::Endpoint> {
    let mut cfg = quinn::EndpointConfig::default();
    if let Some(m) = opts.mtu {
        cfg.max_udp_payload_size(m).map_err(|e| anyhow::anyhow!("--mtu {m}: {e}"))?;
    }
    let socket = std::net::UdpSocket::bind(bind).with_context(|| format!("bind {bind}"))?;
    let ep = quinn::Endpoint::new(cfg, server, socket, Arc::new(quinn::TokioRuntime))
        .with_context(|| format!("endpoint on {bind}"))?;
    Ok(ep)
}

/// What an hq-interop request asks for, once parsed and checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A relative path made only of normal components (no `..`, `.`, root or prefix).
    File(std::path::PathBuf),
    /// `/bench/<N>`: N generated bytes.
    Bench(u64),
}

/// Why a request was refused; maps onto a stream reset code.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    BadRequest(String),
    Forbidden(String),
}

/// Parse `GET /path\r\n` (the trailing CRLF is optional, as some clients omit it).
pub fn parse_request(raw: &[u8]) -> std::result::Result<Request, Refusal> {
    let text = std::str::from_utf8(raw).map_err(|_| Refusal::BadRequest("request is not UTF-8".into()))?;
    let line = text.split(['\r', '\n']).next().unwrap_or("");
    let path = line
        .strip_prefix("GET ")
        .ok_or_else(|| Refusal::BadRequest(format!("not a GET request: {line:?}")))?
        .trim();
    if !path.starts_with('/') {
        return Err(Refusal::BadRequest(format!("path must start with '/': {path:?}")));
    }
    if path.contains('\0') || path.contains('\\') {
        return Err(Refusal::Forbidden(format!("illegal character in path {path:?}")));
    }
    if let Some(n) = path.strip_prefix("/bench/") {
        if let Ok(n) = n.parse::<u64>() {
            return Ok(Request::Bench(n));
        }
    }
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return Err(Refusal::Forbidden("no file named".into()));
    }
    let mut out = std::path::PathBuf::new();
    for comp in std::path::Path::new(rel).components() {
        match comp {
            std::path::Component::Normal(c) => out.push(c),
            // `..`, `.`, a root or a Windows prefix: refuse rather than normalise.
            other => {
                return Err(Refusal::Forbidden(format!("path component {other:?} not allowed in {path:?}")));
            }
        }
    }
    Ok(Request::File(out))
}

/// Bytes of a `/bench/<N>` body at a given offset: a cheap, deterministic pattern.
pub fn bench_pattern(len: usize) -> bytes::Bytes {
    let v: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    bytes::Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(parse_request(b"GET /a.txt\r\n"), Ok(Request::File("a.txt".into())));
        assert_eq!(parse_request(b"GET /d/a.txt"), Ok(Request::File("d/a.txt".into())));
        assert_eq!(parse_request(b"GET /bench/100\r\n"), Ok(Request::Bench(100)));
        assert!(matches!(parse_request(b"GET /../etc/passwd\r\n"), Err(Refusal::Forbidden(_))));
        assert!(matches!(parse_request(b"GET /a/../../x\r\n"), Err(Refusal::Forbidden(_))));
        assert!(matches!(parse_request(b"GET //etc/passwd\r\n"), Ok(Request::File(_))));
        assert!(matches!(parse_request(b"GET /\r\n"), Err(Refusal::Forbidden(_))));
        assert!(matches!(parse_request(b"POST /a\r\n"), Err(Refusal::BadRequest(_))));
        assert!(matches!(parse_request(b"GET a\r\n"), Err(Refusal::BadRequest(_))));
    }
}
