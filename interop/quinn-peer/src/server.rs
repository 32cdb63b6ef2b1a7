//! hq-interop server: one task per connection, one task per request stream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use quinn::VarInt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncReadExt;

use crate::common::{self, CommonOpts, Refusal, Request};
use crate::resumption::CountingCert;

/// Builds a connection's own server config around a fresh [`CountingCert`].
struct PerConnection {
    base_tls: Arc<rustls::ServerConfig>,
    transport: Arc<quinn::TransportConfig>,
    certs: Vec<CertificateDer<'static>>,
    signing_key: Arc<dyn rustls::sign::SigningKey>,
}

impl PerConnection {
    fn config(&self) -> Result<(quinn::ServerConfig, Arc<CountingCert>)> {
        let counting = Arc::new(CountingCert::new(self.certs.clone(), self.signing_key.clone()));
        let mut tls = (*self.base_tls).clone();
        tls.cert_resolver = counting.clone();
        let qtls = quinn::crypto::rustls::QuicServerConfig::with_initial(Arc::new(tls), common::initial_suite())
            .map_err(|e| anyhow!("QUIC TLS config: {e}"))?;
        let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(qtls));
        cfg.transport_config(self.transport.clone());
        Ok((cfg, counting))
    }
}

/// Connections seen and whether each one after the first met the expectation (--exit-after).
#[derive(Default)]
struct Tally {
    ended: u32,
    failures: Vec<String>,
}

/// Test cases the server side supports (anything else exits 127).
const SERVER_TESTCASES: &[&str] = &[
    "handshake",
    "transfer",
    "longrtt",
    "chacha20",
    "multiconnect",
    "multiplexing",
    "retry",
    "keyupdate",
    "blackhole",
    "handshakeloss",
    "transferloss",
    "handshakecorruption",
    "transfercorruption",
    "amplificationlimit",
    "ecn",
    "ipv6",
    "goodput",
    "crosstraffic",
    "rebind-port",
    "rebind-addr",
    "connectionmigration",
    "resumption",
    "zerortt",
];

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum CertAlg {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

#[derive(Parser, Debug)]
#[command(name = "quinn-peer server")]
pub struct ServerArgs {
    /// UDP address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "[::]:443")]
    pub listen: SocketAddr,

    /// Override the port of --listen.
    #[arg(long)]
    pub port: Option<u16>,

    /// Directory to serve files from (nothing outside it is ever served).
    #[arg(long, env = "WWW", value_name = "DIR", default_value = "/www")]
    pub www: PathBuf,

    /// Certificate chain (PEM). Without --cert/--key a self-signed certificate for
    /// localhost, 127.0.0.1 and ::1 is generated (unless /certs/cert.pem and /certs/priv.key exist
    /// and ROLE is set, as in the interop runner).
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,

    /// Private key (PEM: PKCS#8, SEC1 or PKCS#1).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Where to write the generated certificate (PEM), e.g. for the client's --ca.
    #[arg(long, value_name = "PATH")]
    pub cert_out: Option<PathBuf>,

    /// Where to write the generated private key (PKCS#8 PEM).
    #[arg(long, value_name = "PATH")]
    pub key_out: Option<PathBuf>,

    /// Key type of the generated certificate.
    #[arg(long, value_enum, default_value_t = CertAlg::EcdsaP256)]
    pub cert_alg: CertAlg,

    /// After serving the first request of each connection, close it with this application
    /// error code and reason "bye".
    #[arg(long, value_name = "N")]
    pub close_code: Option<u64>,

    /// Force address validation: answer every unvalidated Initial with a Retry.
    #[arg(long)]
    pub retry: bool,

    /// Accept 0-RTT (max_early_data_size = 2^32-1 in the tickets) and serve requests that
    /// arrive in it at 0.5-RTT (the runner's "zerortt").
    #[arg(long)]
    pub zero_rtt: bool,

    /// Report on stderr, for every connection, whether it resumed a session and whether its
    /// requests came in 0-RTT (on by default for the "resumption" and "zerortt" test cases).
    #[arg(long)]
    pub report_resumption: bool,

    /// Exit after N connections have ended: 0 if, counting from the second one, each was
    /// resumed (and with --zero-rtt, carried 0-RTT data), else 1.
    #[arg(long, value_name = "N")]
    pub exit_after: Option<u32>,

    /// Log each request to stderr.
    #[arg(long, short)]
    pub verbose: bool,

    #[command(flatten)]
    pub common: CommonOpts,
}

struct Shared {
    /// Canonical www root.
    root: PathBuf,
    close_code: Option<VarInt>,
    verbose: bool,
    pattern: bytes::Bytes,
}

pub async fn run(mut args: ServerArgs) -> Result<u8> {
    if let Some(tc) = args.common.testcase.as_deref() {
        if !SERVER_TESTCASES.contains(&tc) {
            eprintln!("quinn-peer server: unsupported test case {tc:?}");
            return Ok(crate::EXIT_UNSUPPORTED);
        }
        match tc {
            "retry" => args.retry = true,
            "resumption" => args.report_resumption = true,
            "zerortt" => {
                args.report_resumption = true;
                args.zero_rtt = true;
            }
            _ => {}
        }
    }
    if let Some(p) = args.port {
        args.listen.set_port(p);
    }
    let root = std::fs::canonicalize(&args.www)
        .with_context(|| format!("www directory {}", args.www.display()))?;
    if !root.is_dir() {
        bail!("www {} is not a directory", root.display());
    }

    let (certs, key) = load_or_make_cert(&args)?;

    let provider = common::crypto_provider(args.common.chacha20);
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .context("private key")?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 config")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(CountingCert::new(certs.clone(), signing_key.clone())));
    tls.alpn_protocols = common::alpn_list(&args.common);
    // Tickets are stateful (rustls' default: ids into this in-memory store, each usable once):
    // rustls accepts 0-RTT only for those, never for a stateless Ticketer (single-use tickets
    // are its anti-replay measure, RFC 8446 §8.1). QUIC allows only 0 or 2^32-1 as
    // max_early_data_size (RFC 9001 §4.6.1).
    tls.session_storage = rustls::server::ServerSessionMemoryCache::new(1024);
    tls.send_tls13_tickets = 2;
    tls.max_early_data_size = if args.zero_rtt { u32::MAX } else { 0 };
    // Tickets go out with the server's first flight rather than after the client's Finished.
    tls.send_half_rtt_data = args.report_resumption || args.zero_rtt;
    if let Some(kl) = common::key_log() {
        tls.key_log = kl;
    }
    let transport = Arc::new(common::transport_config(&args.common, true)?);
    let base_tls = Arc::new(tls);
    let qtls = quinn::crypto::rustls::QuicServerConfig::with_initial(base_tls.clone(), common::initial_suite())
        .map_err(|e| anyhow!("QUIC TLS config: {e}"))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(qtls));
    cfg.transport_config(transport.clone());
    // With --report-resumption every connection gets its own TLS config (sharing the session
    // store) whose certificate key counts its signatures: a resumed handshake signs nothing.
    let per_connection = if args.report_resumption || args.exit_after.is_some() {
        Some(PerConnection { base_tls, transport, certs, signing_key })
    } else {
        None
    };

    let endpoint = common::endpoint(&args.common, args.listen, Some(cfg))?;
    let local = endpoint.local_addr()?;
    println!("listening on {local}");

    let shared = Arc::new(Shared {
        root,
        close_code: match args.close_code {
            Some(c) => Some(VarInt::from_u64(c).map_err(|_| anyhow!("--close-code too large"))?),
            None => None,
        },
        verbose: args.verbose,
        pattern: common::bench_pattern(1 << 20),
    });

    let tally = Arc::new(tokio::sync::Mutex::new(Tally::default()));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let mut accepted = 0u32;
    while let Some(incoming) = endpoint.accept().await {
        if args.retry && !incoming.remote_address_validated() {
            if args.verbose {
                eprintln!("retry -> {}", incoming.remote_address());
            }
            if let Err(e) = incoming.retry() {
                eprintln!("retry failed: {e}");
            }
            continue;
        }
        let shared = shared.clone();
        let Some(pc) = &per_connection else {
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                match incoming.await {
                    Ok(conn) => handle_connection(conn, shared).await,
                    Err(e) => eprintln!("handshake with {remote} failed: {e}"),
                }
            });
            continue;
        };
        let (cfg, counting) = pc.config()?;
        accepted += 1;
        let index = accepted;
        let zero_rtt = args.zero_rtt;
        let tally = tally.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let verdict = serve_reporting(incoming, cfg, counting, index, zero_rtt, shared).await;
            let mut t = tally.lock().await;
            t.ended += 1;
            if let Err(why) = verdict {
                eprintln!("connection {index}: FAILED: {why}");
                t.failures.push(format!("connection {index}: {why}"));
            }
            let _ = done.send(t.ended);
        });
        if let Some(n) = args.exit_after {
            if accepted >= n {
                break;
            }
        }
    }
    if let Some(n) = args.exit_after {
        drop(done_tx);
        while let Some(ended) = done_rx.recv().await {
            if ended >= n {
                break;
            }
        }
        let t = tally.lock().await;
        if !t.failures.is_empty() {
            eprintln!("quinn-peer server: {}", t.failures.join("; "));
            return Ok(1);
        }
        eprintln!("quinn-peer server: {n} connections served as expected");
    }
    Ok(0)
}

/// Serves one connection accepted with its own config and reports on stderr whether it resumed
/// and whether requests arrived in 0-RTT. Err (with the reason) when connection 2 or later was
/// expected to resume (and with `zero_rtt`, to carry 0-RTT data) and did not.
async fn serve_reporting(
    incoming: quinn::Incoming,
    cfg: quinn::ServerConfig,
    counting: Arc<CountingCert>,
    index: u32,
    zero_rtt: bool,
    shared: Arc<Shared>,
) -> std::result::Result<(), String> {
    let remote = incoming.remote_address();
    let connecting = incoming.accept_with(Arc::new(cfg)).map_err(|e| format!("accept: {e}"))?;
    // A server's into_0rtt always succeeds (0.5-RTT): streams the client opened in 0-RTT are
    // accepted before the handshake completes, and RecvStream::is_0rtt() says so.
    let (conn, established) = match connecting.into_0rtt() {
        Ok(x) => x,
        Err(_) => return Err("into_0rtt refused on the server side".into()),
    };
    let early_streams = Arc::new(AtomicUsize::new(0));
    let serving = tokio::spawn(handle_connection_counting(conn.clone(), shared, early_streams.clone()));
    // Resolves once the handshake is complete (for a server the value carries nothing).
    let _ = established.await;
    let resumed = counting.signatures() == 0;
    let _ = serving.await;
    // A server sends HANDSHAKE_DONE once its handshake is complete (RFC 9000 §19.20).
    if conn.stats().frame_tx.handshake_done == 0 {
        return Err(format!("handshake with {remote} did not complete: {:?}", conn.close_reason()));
    }
    let early = early_streams.load(Ordering::SeqCst);
    let zero = if early > 0 { "accepted" } else { "none" };
    eprintln!("connection {index}: resumed={resumed} zero_rtt={zero} requests_in_0rtt={early}");
    if index >= 2 {
        if !resumed {
            return Err("not resumed (full handshake: the certificate key signed)".into());
        }
        if zero_rtt && early == 0 {
            return Err("no request arrived in 0-RTT".into());
        }
    }
    Ok(())
}

fn load_or_make_cert(args: &ServerArgs) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let (cert_path, key_path) = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => (Some(c.clone()), Some(k.clone())),
        _ if std::env::var_os("ROLE").is_some()
            && Path::new("/certs/cert.pem").exists()
            && Path::new("/certs/priv.key").exists() =>
        {
            (Some("/certs/cert.pem".into()), Some("/certs/priv.key".into()))
        }
        _ => (None, None),
    };
    if let (Some(c), Some(k)) = (cert_path, key_path) {
        let certs = CertificateDer::pem_file_iter(&c)
            .with_context(|| format!("read {}", c.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parse {}", c.display()))?;
        if certs.is_empty() {
            bail!("no certificate in {}", c.display());
        }
        let key = PrivateKeyDer::from_pem_file(&k).with_context(|| format!("read key {}", k.display()))?;
        return Ok((certs, key));
    }

    let alg = match args.cert_alg {
        CertAlg::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        CertAlg::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        CertAlg::Ed25519 => &rcgen::PKCS_ED25519,
    };
    let key_pair = rcgen::KeyPair::generate_for(alg)?;
    let mut params = rcgen::CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "quinn-peer self-signed");
    let cert = params.self_signed(&key_pair)?;
    if let Some(p) = &args.cert_out {
        std::fs::write(p, cert.pem()).with_context(|| format!("write {}", p.display()))?;
    }
    if let Some(p) = &args.key_out {
        std::fs::write(p, key_pair.serialize_pem()).with_context(|| format!("write {}", p.display()))?;
    }
    let key = PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    Ok((vec![cert.der().clone()], key))
}

async fn handle_connection(conn: quinn::Connection, shared: Arc<Shared>) {
    handle_connection_counting(conn, shared, Arc::new(AtomicUsize::new(0))).await
}

/// Serves every request stream of `conn`; counts in `early` the streams opened in 0-RTT.
async fn handle_connection_counting(conn: quinn::Connection, shared: Arc<Shared>, early: Arc<AtomicUsize>) {
    let remote = conn.remote_address();
    let alpn = conn
        .handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol)
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_default();
    if shared.verbose {
        eprintln!("connection from {remote} (alpn={alpn})");
    }
    let closing = Arc::new(AtomicBool::new(false));
    let reason = loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                if recv.is_0rtt() {
                    early.fetch_add(1, Ordering::SeqCst);
                }
                let conn = conn.clone();
                let shared = shared.clone();
                let closing = closing.clone();
                tokio::spawn(async move {
                    let id = send.id();
                    match handle_stream(send, recv, &shared).await {
                        Ok(true) => {
                            if let Some(code) = shared.close_code {
                                if !closing.swap(true, Ordering::SeqCst) {
                                    conn.close(code, b"bye");
                                }
                            }
                        }
                        Ok(false) => {}
                        Err(e) => {
                            if shared.verbose {
                                eprintln!("{remote} stream {id}: {e:#}");
                            }
                        }
                    }
                });
            }
            Err(e) => break e,
        }
    };
    if shared.verbose {
        eprintln!("connection from {remote} ended: {reason}");
    }
}

/// Serve one request. Ok(true) when a response was completely delivered (acknowledged).
async fn handle_stream(mut send: quinn::SendStream, mut recv: quinn::RecvStream, shared: &Shared) -> Result<bool> {
    let raw = match recv.read_to_end(4096).await {
        Ok(r) => r,
        Err(quinn::ReadToEndError::TooLong) => {
            let _ = recv.stop(VarInt::from_u32(common::CODE_BAD_REQUEST));
            let _ = send.reset(VarInt::from_u32(common::CODE_BAD_REQUEST));
            bail!("request longer than 4096 bytes");
        }
        Err(e) => return Err(e.into()),
    };
    let req = match common::parse_request(&raw) {
        Ok(r) => r,
        Err(Refusal::BadRequest(why)) => {
            let _ = send.reset(VarInt::from_u32(common::CODE_BAD_REQUEST));
            bail!("400: {why}");
        }
        Err(Refusal::Forbidden(why)) => {
            let _ = send.reset(VarInt::from_u32(common::CODE_FORBIDDEN));
            bail!("403: {why}");
        }
    };
    if shared.verbose {
        eprintln!("stream {}: {:?}", send.id(), req);
    }
    match req {
        Request::Bench(n) => {
            let mut left = n;
            while left > 0 {
                let k = left.min(shared.pattern.len() as u64) as usize;
                send.write_chunk(shared.pattern.slice(..k)).await?;
                left -= k as u64;
            }
        }
        Request::File(rel) => {
            let path = match resolve(&shared.root, &rel).await {
                Ok(p) => p,
                Err(code) => {
                    let _ = send.reset(VarInt::from_u32(code));
                    bail!("{code}: /{}", rel.display());
                }
            };
            let mut file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => {
                    let _ = send.reset(VarInt::from_u32(common::CODE_NOT_FOUND));
                    bail!("open {}: {e}", path.display());
                }
            };
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match file.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = send.reset(VarInt::from_u32(common::CODE_INTERNAL));
                        bail!("read {}: {e}", path.display());
                    }
                };
                send.write_all(&buf[..n]).await?;
            }
        }
    }
    send.finish()?;
    if shared.close_code.is_some() {
        // Only close once the peer has everything; closing earlier would discard
        // unacknowledged stream data.
        match send.stopped().await {
            Ok(None) => return Ok(true),
            Ok(Some(code)) => bail!("peer stopped the stream with code {code}"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Map a checked relative path onto the www root; refuse anything that, after following
/// symlinks, lies outside it. Err carries the stream reset code.
async fn resolve(root: &Path, rel: &Path) -> std::result::Result<PathBuf, u32> {
    let joined = root.join(rel);
    let canon = match tokio::fs::canonicalize(&joined).await {
        Ok(c) => c,
        Err(_) => return Err(common::CODE_NOT_FOUND),
    };
    if !canon.starts_with(root) {
        return Err(common::CODE_FORBIDDEN);
    }
    match tokio::fs::metadata(&canon).await {
        Ok(m) if m.is_file() => Ok(canon),
        _ => Err(common::CODE_NOT_FOUND),
    }
}
