//! hq-interop client: one bidi stream per request, `GET /path\r\n` + FIN, body until FIN.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use quinn::VarInt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncWriteExt;

use crate::common::{self, CommonOpts};
use crate::resumption::{CountingVerifier, TicketStore};

/// Test cases the client side supports (anything else exits 127).
const CLIENT_TESTCASES: &[&str] = &[
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
    "resumption",
    "zerortt",
];

#[derive(Parser, Debug)]
#[command(name = "quinn-peer client")]
pub struct ClientArgs {
    /// URLs to fetch, e.g. https://127.0.0.1:4433/file1 (all from the first URL's server).
    #[arg(env = "REQUESTS", value_name = "URL", value_delimiter = ' ')]
    pub urls: Vec<String>,

    /// Directory the downloaded files are written to.
    #[arg(long, env = "DOWNLOADS", value_name = "DIR", default_value = "/downloads")]
    pub downloads: PathBuf,

    /// Trust anchors (PEM) to verify the server certificate with.
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,

    /// Do not verify the server certificate (handshake signatures are still checked).
    #[arg(long)]
    pub insecure: bool,

    /// TLS server name (SNI / certificate name); default: the URL's host.
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,

    /// Issue the requests one after another instead of concurrently.
    #[arg(long)]
    pub sequential: bool,

    /// Repeat the whole set of requests on N connections, one after another.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub connections: u32,

    /// Use a separate connection for every URL (the runner's multiconnect/handshakeloss).
    #[arg(long)]
    pub connection_per_request: bool,

    /// Bench mode: fetch the single URL, discard the body, check it is N bytes and print
    /// `bytes=N seconds=S mbps=X`.
    #[arg(long, value_name = "N")]
    pub bench_bytes: Option<u64>,

    /// Force a TLS key update after the first body bytes arrive.
    #[arg(long)]
    pub key_update: bool,

    /// After the downloads, wait for the server to close the connection (up to the idle
    /// timeout) instead of closing it ourselves; fail if it does not.
    #[arg(long)]
    pub wait_for_close: bool,

    /// Application error code used when the client closes the connection.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub close_code: u64,

    /// Local UDP address to bind (default: an ephemeral port of the server's family).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,

    /// Fetch the first URL on one connection, keep its session ticket, then fetch the other
    /// URLs on a second connection that resumes the session (the runner's "resumption").
    /// Fails when the second handshake is not a resumption.
    #[arg(long)]
    pub resume: bool,

    /// Like --resume, and the second connection sends its requests in 0-RTT (the runner's
    /// "zerortt"). Fails when the server does not accept the 0-RTT data.
    #[arg(long)]
    pub zero_rtt: bool,

    /// Log progress to stderr.
    #[arg(long, short)]
    pub verbose: bool,

    #[command(flatten)]
    pub common: CommonOpts,
}

#[derive(Debug, Clone)]
struct Target {
    url: String,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("URL must start with https://: {url:?}"))?;
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = auth.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| anyhow!("bad IPv6 host in {url:?}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().with_context(|| format!("bad port in {url:?}"))?,
            None if after.is_empty() => 443,
            None => bail!("bad authority in {url:?}"),
        };
        (h.to_string(), port)
    } else if let Some((h, p)) = auth.rsplit_once(':') {
        (h.to_string(), p.parse().with_context(|| format!("bad port in {url:?}"))?)
    } else {
        (auth.to_string(), 443)
    };
    if host.is_empty() {
        bail!("no host in {url:?}");
    }
    Ok(Target { url: url.to_string(), host, port, path: path.to_string() })
}

/// Local file for a request path: only its normal components, under the downloads dir.
fn local_name(downloads: &Path, path: &str) -> PathBuf {
    let mut out = downloads.to_path_buf();
    let mut any = false;
    for c in Path::new(path.trim_start_matches('/')).components() {
        if let Component::Normal(c) = c {
            out.push(c);
            any = true;
        }
    }
    if !any {
        out.push("index");
    }
    out
}

/// Accepts any certificate but still checks the handshake signature with it, so a broken
/// CertificateVerify from the peer is caught even in insecure mode.
#[derive(Debug)]
struct NoCertCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoCertCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Ctx {
    downloads: PathBuf,
    key_update: bool,
    key_updated: AtomicBool,
    verbose: bool,
}

pub async fn run(mut args: ClientArgs) -> Result<u8> {
    if let Some(tc) = args.common.testcase.clone() {
        if !CLIENT_TESTCASES.contains(&tc.as_str()) {
            eprintln!("quinn-peer client: unsupported test case {tc:?}");
            return Ok(crate::EXIT_UNSUPPORTED);
        }
        match tc.as_str() {
            "chacha20" => args.common.chacha20 = true,
            "multiconnect" | "handshakeloss" | "handshakecorruption" => args.connection_per_request = true,
            "keyupdate" => args.key_update = true,
            "resumption" => args.resume = true,
            "zerortt" => args.zero_rtt = true,
            _ => {}
        }
    }
    let targets = args
        .urls
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .map(parse_url)
        .collect::<Result<Vec<_>>>()?;
    if targets.is_empty() {
        bail!("no URLs given (arguments or REQUESTS)");
    }
    if args.bench_bytes.is_some() && targets.len() != 1 {
        bail!("--bench-bytes takes exactly one URL");
    }
    if (args.resume || args.zero_rtt) && targets.len() < 2 {
        bail!("--resume/--zero-rtt need at least two URLs (the first for the first connection)");
    }
    if args.connections == 0 {
        bail!("--connections must be >= 1");
    }
    let first = &targets[0];
    for t in &targets[1..] {
        if t.host != first.host || t.port != first.port {
            eprintln!("warning: {} is fetched from {}:{} (the first URL's server)", t.url, first.host, first.port);
        }
    }
    let addr = tokio::net::lookup_host((first.host.as_str(), first.port))
        .await
        .with_context(|| format!("resolve {}", first.host))?
        .next()
        .ok_or_else(|| anyhow!("{} has no address", first.host))?;
    let server_name = args.server_name.clone().unwrap_or_else(|| first.host.clone());

    // TLS
    let provider = common::crypto_provider(args.common.chacha20);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 config")?;
    let insecure = args.insecure || (args.ca.is_none() && std::env::var_os("ROLE").is_some());
    let verifier: Arc<dyn ServerCertVerifier> = if let Some(ca) = &args.ca {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).with_context(|| format!("read {}", ca.display()))? {
            roots
                .add(c.with_context(|| format!("parse {}", ca.display()))?)
                .with_context(|| format!("trust anchor from {}", ca.display()))?;
        }
        if roots.is_empty() {
            bail!("no certificate in {}", ca.display());
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .context("certificate verifier")?
    } else if insecure {
        Arc::new(NoCertCheck(provider))
    } else {
        bail!("give --ca PEM to verify the server certificate, or --insecure");
    };
    // Counting verifications tells a full handshake (the server sent its certificate) from a
    // resumed one (RFC 8446 §2.2: no Certificate): see resumption.rs.
    let verifier = Arc::new(CountingVerifier::new(verifier));
    let mut tls = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    // Tickets are kept in memory (rustls' default store, wrapped to signal arrivals); the one
    // ClientConfig and Endpoint serve both connections of --resume/--zero-rtt.
    let tickets = Arc::new(TicketStore::new());
    tls.resumption = rustls::client::Resumption::store(tickets.clone());
    tls.alpn_protocols = common::alpn_list(&args.common);
    // quinn sends 0-RTT only when rustls offers early data (RFC 9001 §4.6.1).
    tls.enable_early_data = args.zero_rtt;
    if let Some(kl) = common::key_log() {
        tls.key_log = kl;
    }
    let qtls = quinn::crypto::rustls::QuicClientConfig::with_initial(Arc::new(tls), common::initial_suite())
        .map_err(|e| anyhow!("QUIC TLS config: {e}"))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(qtls));
    cfg.transport_config(Arc::new(common::transport_config(&args.common, false)?));

    let bind = args.bind.unwrap_or_else(|| {
        if addr.is_ipv6() {
            "[::]:0".parse().unwrap()
        } else {
            "0.0.0.0:0".parse().unwrap()
        }
    });
    let mut endpoint = common::endpoint(&args.common, bind, None)?;
    endpoint.set_default_client_config(cfg);

    if args.bench_bytes.is_none() {
        tokio::fs::create_dir_all(&args.downloads)
            .await
            .with_context(|| format!("create {}", args.downloads.display()))?;
    }
    let ctx = Arc::new(Ctx {
        downloads: args.downloads.clone(),
        key_update: args.key_update,
        key_updated: AtomicBool::new(false),
        verbose: args.verbose,
    });

    let groups: Vec<Vec<Target>> = if args.connection_per_request {
        targets.iter().map(|t| vec![t.clone()]).collect()
    } else {
        vec![targets.clone()]
    };

    if args.resume || args.zero_rtt {
        let probe = Probe { verifier, tickets };
        let result = run_resumption(&endpoint, addr, &server_name, &targets, &args, &ctx, &probe).await;
        let _ = tokio::time::timeout(Duration::from_secs(3), endpoint.wait_idle()).await;
        return result.map(|_| 0);
    }

    let mut result = Ok(());
    'outer: for round in 0..args.connections {
        for group in &groups {
            if let Err(e) = run_connection(&endpoint, addr, &server_name, group, &args, &ctx).await {
                result = Err(e.context(format!("connection {} to {addr}", round + 1)));
                break 'outer;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), endpoint.wait_idle()).await;
    result.map(|_| 0)
}

async fn run_connection(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
    group: &[Target],
    args: &ClientArgs,
    ctx: &Arc<Ctx>,
) -> Result<()> {
    let t0 = Instant::now();
    let conn = endpoint
        .connect(addr, server_name)
        .context("connect")?
        .await
        .context("handshake")?;
    ctx.key_updated.store(false, Ordering::SeqCst);
    if args.verbose {
        eprintln!("connected to {addr} ({server_name}) in {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    }

    let res = if let Some(n) = args.bench_bytes {
        bench(&conn, &group[0], n, ctx).await
    } else if args.sequential {
        let mut r = Ok(());
        for t in group {
            if let Err(e) = fetch(&conn, t, ctx).await {
                r = Err(e);
                break;
            }
        }
        r
    } else {
        let mut set = tokio::task::JoinSet::new();
        for t in group {
            let conn = conn.clone();
            let ctx = ctx.clone();
            let t = t.clone();
            set.spawn(async move { fetch(&conn, &t, &ctx).await });
        }
        let mut r = Ok(());
        while let Some(j) = set.join_next().await {
            let e = match j {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(e) => anyhow!("request task failed: {e}"),
            };
            if r.is_ok() {
                r = Err(e);
            }
        }
        r
    };

    if args.verbose {
        let st = conn.stats();
        eprintln!(
            "stats: rtt={:?} mtu={} cwnd={} lost_packets={} udp_rx={} datagrams / {} bytes, udp_tx={} datagrams",
            st.path.rtt,
            st.path.current_mtu,
            st.path.cwnd,
            st.path.lost_packets,
            st.udp_rx.datagrams,
            st.udp_rx.bytes,
            st.udp_tx.datagrams
        );
    }
    let mut peer_closed = report_peer_close(&conn);
    if res.is_ok() && !peer_closed && args.wait_for_close {
        let idle = Duration::from_secs(args.common.idle_timeout);
        if tokio::time::timeout(idle, conn.closed()).await.is_ok() {
            peer_closed = report_peer_close(&conn);
        }
        if !peer_closed {
            conn.close(VarInt::from_u32(0), b"");
            bail!("server did not close the connection (--wait-for-close)");
        }
    }
    if !peer_closed {
        let code = VarInt::from_u64(args.close_code).map_err(|_| anyhow!("--close-code too large"))?;
        let reason: &[u8] = if res.is_ok() { b"done" } else { b"error" };
        conn.close(code, reason);
    }
    res
}

/// What the client watches to tell a resumed handshake and a received ticket.
struct Probe {
    verifier: Arc<CountingVerifier>,
    tickets: Arc<TicketStore>,
}

/// How long to wait for the first connection's NewSessionTicket.
const TICKET_TIMEOUT: Duration = Duration::from_secs(5);

/// "resumption" / "zerortt": the first URL on a first connection, whose session ticket is
/// kept; the other URLs on a second connection resuming it (with --zero-rtt: requests sent in
/// 0-RTT, before the handshake completes). Prints on stderr what each connection did, and
/// fails when the second one was not resumed (or its 0-RTT data not accepted).
async fn run_resumption(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
    targets: &[Target],
    args: &ClientArgs,
    ctx: &Arc<Ctx>,
    probe: &Probe,
) -> Result<()> {
    // Connection 1: full handshake, one request, wait for a ticket.
    let tickets_before = probe.tickets.received();
    let certs_before = probe.verifier.verified();
    let conn = endpoint
        .connect(addr, server_name)
        .context("connect 1")?
        .await
        .context("handshake 1")?;
    let resumed = probe.verifier.verified() == certs_before;
    eprintln!("connection 1: resumed={resumed} zero_rtt=none");
    let res = fetch(&conn, &targets[0], ctx).await;
    let ticket = tokio::time::timeout(TICKET_TIMEOUT, probe.tickets.wait_for_more_than(tickets_before)).await;
    conn.close(VarInt::from_u32(0), if res.is_ok() { b"done" } else { b"error" });
    res.context("connection 1")?;
    if ticket.is_err() {
        bail!("connection 1: no session ticket (NewSessionTicket) from the server within {TICKET_TIMEOUT:?}");
    }
    eprintln!("connection 1: session tickets received: {}", probe.tickets.received() - tickets_before);

    // Connection 2: resumes with the ticket (and sends its requests in 0-RTT with --zero-rtt).
    let certs_before = probe.verifier.verified();
    let connecting = endpoint.connect(addr, server_name).context("connect 2")?;
    let rest = &targets[1..];
    let (conn, zero_rtt) = if args.zero_rtt {
        match connecting.into_0rtt() {
            Ok((conn, accepted)) => {
                // Requests go out now, in 0-RTT packets.
                let set = spawn_fetches(&conn, rest, ctx);
                let accepted = accepted.await;
                (conn, Some((accepted, set)))
            }
            Err(connecting) => {
                // Finish and close that connection rather than leave it to the idle timeout.
                if let Ok(conn) = connecting.await {
                    conn.close(VarInt::from_u32(0), b"no 0-RTT");
                }
                bail!(
                    "connection 2: no 0-RTT keys (the client holds no ticket allowing early data: \
                     the server's NewSessionTicket had no early_data extension)"
                )
            }
        }
    } else {
        (connecting.await.context("handshake 2")?, None)
    };
    // The handshake is complete here (ZeroRttAccepted resolves on it).
    let resumed = probe.verifier.verified() == certs_before;
    let zero_rtt_word = match &zero_rtt {
        None => "none",
        Some((true, _)) => "accepted",
        Some((false, _)) => "rejected",
    };
    eprintln!("connection 2: resumed={resumed} zero_rtt={zero_rtt_word}");
    let res = match zero_rtt {
        Some((_, set)) => join_fetches(set).await,
        None => join_fetches(spawn_fetches(&conn, rest, ctx)).await,
    };
    conn.close(VarInt::from_u32(0), if res.is_ok() { b"done" } else { b"error" });
    if !resumed {
        bail!("connection 2 was not resumed: the server sent its certificate (full handshake)");
    }
    if zero_rtt_word == "rejected" {
        bail!("connection 2: the server rejected the 0-RTT data");
    }
    res.context("connection 2")
}

fn spawn_fetches(conn: &quinn::Connection, group: &[Target], ctx: &Arc<Ctx>) -> tokio::task::JoinSet<Result<()>> {
    let mut set = tokio::task::JoinSet::new();
    for t in group {
        let conn = conn.clone();
        let ctx = ctx.clone();
        let t = t.clone();
        set.spawn(async move { fetch(&conn, &t, &ctx).await });
    }
    set
}

async fn join_fetches(mut set: tokio::task::JoinSet<Result<()>>) -> Result<()> {
    let mut r = Ok(());
    while let Some(j) = set.join_next().await {
        let e = match j {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) => anyhow!("request task failed: {e}"),
        };
        if r.is_ok() {
            r = Err(e);
        }
    }
    r
}

/// Print how the peer closed the connection, if it did. Returns whether it did.
fn report_peer_close(conn: &quinn::Connection) -> bool {
    match conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(ac)) => {
            println!(
                "closed by peer: code={} reason={}",
                ac.error_code.into_inner(),
                String::from_utf8_lossy(&ac.reason)
            );
            true
        }
        Some(quinn::ConnectionError::ConnectionClosed(cc)) => {
            println!(
                "closed by peer (transport): code={} reason={}",
                u64::from(cc.error_code),
                String::from_utf8_lossy(&cc.reason)
            );
            true
        }
        _ => false,
    }
}

fn read_error(path: &str, e: quinn::ReadError) -> anyhow::Error {
    match e {
        quinn::ReadError::Reset(code) => {
            anyhow!("server reset the stream for {path} with code {}", code.into_inner())
        }
        other => anyhow!("reading {path}: {other}"),
    }
}

async fn fetch(conn: &quinn::Connection, t: &Target, ctx: &Ctx) -> Result<()> {
    let start = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await.with_context(|| format!("open stream for {}", t.path))?;
    send.write_all(format!("GET {}\r\n", t.path).as_bytes())
        .await
        .with_context(|| format!("send request {}", t.path))?;
    send.finish().ok();

    // The file is created only once the server answers (first bytes or FIN), so a refused
    // request leaves nothing behind in the downloads directory.
    let local = local_name(&ctx.downloads, &t.path);
    let mut file: Option<tokio::fs::File> = None;
    let mut total = 0u64;
    let body: Result<()> = async {
        loop {
            let chunk = match recv.read_chunk(usize::MAX, true).await {
                Ok(c) => c,
                Err(e) => return Err(read_error(&t.path, e)),
            };
            if file.is_none() {
                if let Some(parent) = local.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .with_context(|| format!("create {}", parent.display()))?;
                }
                file = Some(
                    tokio::fs::File::create(&local)
                        .await
                        .with_context(|| format!("create {}", local.display()))?,
                );
            }
            let f = file.as_mut().expect("file just opened");
            match chunk {
                Some(chunk) => {
                    total += chunk.bytes.len() as u64;
                    f.write_all(&chunk.bytes).await.context("write")?;
                    maybe_key_update(conn, ctx);
                }
                None => {
                    f.flush().await.context("flush")?;
                    return Ok(());
                }
            }
        }
    }
    .await;
    if let Err(e) = body {
        if file.take().is_some() {
            let _ = tokio::fs::remove_file(&local).await;
        }
        return Err(e);
    }
    if ctx.verbose {
        eprintln!(
            "{} -> {} ({total} bytes, {:.1} ms)",
            t.url,
            local.display(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(())
}

fn maybe_key_update(conn: &quinn::Connection, ctx: &Ctx) {
    if ctx.key_update && !ctx.key_updated.swap(true, Ordering::SeqCst) {
        conn.force_key_update();
    }
}

async fn bench(conn: &quinn::Connection, t: &Target, expect: u64, ctx: &Ctx) -> Result<()> {
    let start = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await.context("open stream")?;
    send.write_all(format!("GET {}\r\n", t.path).as_bytes()).await.context("send request")?;
    send.finish().ok();
    let mut total = 0u64;
    loop {
        match recv.read_chunk(usize::MAX, false).await {
            Ok(Some(chunk)) => {
                total += chunk.bytes.len() as u64;
                maybe_key_update(conn, ctx);
            }
            Ok(None) => break,
            Err(e) => return Err(read_error(&t.path, e)),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if total != expect {
        bail!("received {total} bytes, expected {expect}");
    }
    println!("bytes={total} seconds={secs:.3} mbps={:.1}", total as f64 * 8.0 / 1e6 / secs);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("https://127.0.0.1:4433/file1").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("127.0.0.1", 4433, "/file1"));
        let t = parse_url("https://[::1]:4433/a/b").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 4433, "/a/b"));
        let t = parse_url("https://server/x").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("server", 443, "/x"));
        assert!(parse_url("http://x/y").is_err());
    }

    #[test]
    fn local_names_stay_inside() {
        let d = Path::new("/dl");
        assert_eq!(local_name(d, "/../../etc/passwd"), PathBuf::from("/dl/etc/passwd"));
        assert_eq!(local_name(d, "/a/b"), PathBuf::from("/dl/a/b"));
        assert_eq!(local_name(d, "/"), PathBuf::from("/dl/index"));
    }
}
