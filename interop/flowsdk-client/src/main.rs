//! MQTT-over-QUIC interop client on EMQ's `flowsdk` crate (0.7, feature `quic`), for mquictt's
//! interop tests (test/interop/flowsdk.test.ts).
//!
//! Two flowsdk clients behind one command line:
//!
//! - `--mode single`: flowsdk's `TokioAsyncMqttClient` with a `quic://` peer. Its QUIC transport
//!   (quinn) opens ONE bidirectional stream and runs the whole MQTT session on it. flowsdk fixes
//!   its ALPN to `mqtt`.
//! - `--mode multi`: flowsdk's sans-I/O `QuicMqttEngine` (quinn-proto), driven here by a tokio UDP
//!   loop. CONNECT/CONNACK, PINGREQ and DISCONNECT go on the control stream (the first client
//!   bidi stream); every `--topic` gets its own data stream from `open_data_stream()`, carrying
//!   that topic's SUBSCRIBE (`subscribe_on`) or PUBLISHes (`publish_on`) and their acks.
//!
//! Output: one JSON object per line on stdout (`{"event":"connected",...}`, `"subscribed"`,
//! `"published"`, `"message"`, `"done"`); diagnostics on stderr. Exit codes: 0 done, 1 runtime
//! failure (connection, rejection, timeout), 2 bad arguments.

use flowsdk::mqtt_client::client::{ConnectionResult, PublishResult, SubscribeResult};
use flowsdk::mqtt_client::commands::{PublishCommand, SubscribeCommand};
use flowsdk::mqtt_client::engine::{MqttEvent, QuicMqttEngine};
use flowsdk::mqtt_client::{
    MqttClientError, MqttClientOptions, MqttMessage, TokioAsyncClientConfig, TokioAsyncMqttClient,
    TokioMqttEventHandler,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::json;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const USAGE: &str = "usage: flowsdk-client --mode single|multi --action pub|sub \
(--url quic://HOST:PORT | --host HOST --port PORT) (--ca PEM | --insecure) [--server-name NAME] \
[--alpn PROTO]... [--client-id ID] [--mqtt-version 3.1.1|5] --topic T [--topic T]... [--qos 0|1|2] \
[--count N] [--message TEXT] [--retain] [--no-drain] [--timeout SECONDS]

  pub: publishes --count messages to every --topic (payload TEXT when N=1, else TEXT-1..TEXT-N),
       waits for PUBACK/PUBCOMP at QoS 1/2, then DISCONNECTs (multi: after the broker acknowledged
       the FIN of every data stream, unless --no-drain)
  sub: subscribes to every --topic at --qos, prints each message, exits after --count messages
       (in total), or fails after --timeout seconds (default 20)";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Single,
    Multi,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Action {
    Pub,
    Sub,
}

#[derive(Debug)]
struct Args {
    mode: Mode,
    action: Action,
    host: String,
    port: u16,
    server_name: Option<String>,
    alpn: Vec<String>,
    ca: Option<String>,
    insecure: bool,
    client_id: String,
    version: u8,
    topics: Vec<String>,
    qos: u8,
    count: usize,
    message: String,
    retain: bool,
    /// multi pub: DISCONNECT right after the last PUBLISH/ack, without waiting for the broker to
    /// acknowledge the data streams' FIN.
    no_drain: bool,
    timeout: Duration,
}

/// A failure, with the exit code it maps to.
#[derive(Debug)]
enum Failure {
    Usage(String),
    Run(String),
}

impl From<MqttClientError> for Failure {
    fn from(e: MqttClientError) -> Self {
        Failure::Run(e.to_string())
    }
}
impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Run(e.to_string())
    }
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

fn parse_args(argv: Vec<String>) -> Result<Args, Failure> {
    let mut mode = None;
    let mut action = None;
    let mut url: Option<String> = None;
    let mut host: Option<String> = None;
    let mut port: Option<u16> = None;
    let mut a = Args {
        mode: Mode::Single,
        action: Action::Pub,
        host: String::new(),
        port: 14567,
        server_name: None,
        alpn: Vec::new(),
        ca: None,
        insecure: false,
        client_id: format!("flowsdk-{}", std::process::id()),
        version: 5,
        topics: Vec::new(),
        qos: 0,
        count: 1,
        message: "hello".into(),
        retain: false,
        no_drain: false,
        timeout: Duration::from_secs(20),
    };
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        if flag == "--insecure" {
            a.insecure = true;
            continue;
        }
        if flag == "--retain" {
            a.retain = true;
            continue;
        }
        if flag == "--no-drain" {
            a.no_drain = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(usage(""));
        }
        let value = it
            .next()
            .ok_or_else(|| usage(format!("{flag} needs a value")))?;
        match flag.as_str() {
            "--mode" => {
                mode = Some(match value.as_str() {
                    "single" => Mode::Single,
                    "multi" => Mode::Multi,
                    _ => return Err(usage(format!("--mode: single or multi, not {value:?}"))),
                })
            }
            "--action" => {
                action = Some(match value.as_str() {
                    "pub" => Action::Pub,
                    "sub" => Action::Sub,
                    _ => return Err(usage(format!("--action: pub or sub, not {value:?}"))),
                })
            }
            "--url" => url = Some(value),
            "--host" => host = Some(value),
            "--port" => {
                port = Some(
                    value
                        .parse()
                        .map_err(|_| usage(format!("--port: not a port: {value:?}")))?,
                )
            }
            "--server-name" => a.server_name = Some(value),
            "--alpn" => a.alpn.push(value),
            "--ca" => a.ca = Some(value),
            "--client-id" => a.client_id = value,
            "--mqtt-version" => {
                a.version = match value.as_str() {
                    "3.1.1" | "311" | "4" => 4,
                    "5" | "5.0" => 5,
                    _ => return Err(usage(format!("--mqtt-version: 3.1.1 or 5, not {value:?}"))),
                }
            }
            "--topic" => a.topics.push(value),
            "--qos" => {
                a.qos = match value.as_str() {
                    "0" => 0,
                    "1" => 1,
                    "2" => 2,
                    _ => return Err(usage(format!("--qos: 0, 1 or 2, not {value:?}"))),
                }
            }
            "--count" => {
                a.count =
                    value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        usage(format!("--count: a positive number, not {value:?}"))
                    })?
            }
            "--message" => a.message = value,
            "--timeout" => {
                let s: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .ok_or_else(|| usage(format!("--timeout: seconds > 0, not {value:?}")))?;
                a.timeout = Duration::from_secs_f64(s);
            }
            _ => return Err(usage(format!("unknown flag {flag}"))),
        }
    }
    a.mode = mode.ok_or_else(|| usage("--mode is required"))?;
    a.action = action.ok_or_else(|| usage("--action is required"))?;
    match (url, host) {
        (Some(u), None) => {
            let rest = u
                .strip_prefix("quic://")
                .or_else(|| u.strip_prefix("mqtt+quic://"))
                .ok_or_else(|| usage(format!("--url: quic://HOST:PORT, not {u:?}")))?;
            let (h, p) = rest
                .rsplit_once(':')
                .ok_or_else(|| usage(format!("--url needs a port: {u:?}")))?;
            a.host = h.trim_start_matches('[').trim_end_matches(']').to_string();
            a.port = p
                .parse()
                .map_err(|_| usage(format!("--url: not a port: {p:?}")))?;
            if port.is_some() {
                return Err(usage("--port together with --url"));
            }
        }
        (None, Some(h)) => {
            a.host = h;
            a.port = port.unwrap_or(14567);
        }
        (Some(_), Some(_)) => return Err(usage("--url and --host are exclusive")),
        (None, None) => return Err(usage("--url or --host is required")),
    }
    if a.ca.is_some() == a.insecure {
        return Err(usage("exactly one of --ca PEM and --insecure"));
    }
    if a.topics.is_empty() {
        return Err(usage("--topic is required"));
    }
    if a.alpn.is_empty() {
        a.alpn.push("mqtt".into());
    }
    if a.mode == Mode::Single && a.alpn != ["mqtt"] {
        // flowsdk's TokioAsyncMqttClient hard-codes `.alpn(b"mqtt")` for quic:// peers.
        return Err(usage(
            "--mode single: flowsdk's single-stream client always offers ALPN \"mqtt\"; --alpn applies to --mode multi",
        ));
    }
    Ok(a)
}

/// One JSON line on stdout (flushed: the tests read it while we run).
fn emit(v: serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn message_json(m: &MqttMessage, mode: Mode, stream: Option<u64>) -> serde_json::Value {
    json!({
        "event": "message",
        "mode": mode_name(mode),
        "topic": m.topic_name,
        "qos": m.qos,
        "retain": m.retain,
        "dup": m.dup,
        "payload": String::from_utf8_lossy(&m.payload),
        "stream": stream,
    })
}

fn connected_json(r: &ConnectionResult, mode: Mode, version: u8) -> serde_json::Value {
    json!({
        "event": "connected",
        "mode": mode_name(mode),
        "mqtt_version": if version == 5 { "5" } else { "3.1.1" },
        "reason_code": r.reason_code,
        "session_present": r.session_present,
    })
}

fn subscribed_json(r: &SubscribeResult, topic: &str, stream: Option<u64>) -> serde_json::Value {
    json!({
        "event": "subscribed",
        "topic": topic,
        "packet_id": r.packet_id,
        "reason_codes": r.reason_codes,
        "stream": stream,
    })
}

fn published_json(
    topic: &str,
    payload: &str,
    qos: u8,
    r: Option<&PublishResult>,
    stream: Option<u64>,
) -> serde_json::Value {
    json!({
        "event": "published",
        "topic": topic,
        "payload": payload,
        "qos": qos,
        "packet_id": r.and_then(|r| r.packet_id),
        "reason_code": r.and_then(|r| r.reason_code),
        "stream": stream,
    })
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Single => "single",
        Mode::Multi => "multi",
    }
}

/// The payloads a publisher sends to each topic.
fn payloads(a: &Args) -> Vec<String> {
    if a.count == 1 {
        vec![a.message.clone()]
    } else {
        (1..=a.count)
            .map(|i| format!("{}-{i}", a.message))
            .collect()
    }
}

/// A SUBACK reason code (any version) that grants the subscription: 0x00-0x02.
fn granted(codes: &[u8]) -> bool {
    !codes.is_empty() && codes.iter().all(|c| *c <= 2)
}

// ---------------------------------------------------------------------------------------------
// single stream: TokioAsyncMqttClient over quic://
// ---------------------------------------------------------------------------------------------

/// Forwards received messages to the main task.
struct Forward {
    tx: mpsc::UnboundedSender<MqttMessage>,
}

#[async_trait::async_trait]
impl TokioMqttEventHandler for Forward {
    async fn on_message_received(&mut self, publish: &MqttMessage) {
        let _ = self.tx.send(publish.clone());
    }
    async fn on_error(&mut self, error: &MqttClientError) {
        eprintln!("flowsdk error: {}", error.user_message());
    }
    async fn on_disconnected(&mut self, reason: Option<u8>) {
        eprintln!("flowsdk disconnected (reason {reason:?})");
    }
}

async fn run_single(a: &Args) -> Result<(), Failure> {
    if let Some(name) = &a.server_name {
        if name != &a.host {
            // flowsdk's QuicTransport takes SNI from the host part of the peer address.
            return Err(usage("--mode single: flowsdk takes the server name from the host; --server-name must equal it"));
        }
    }
    let opts = MqttClientOptions::builder()
        .peer(format!("quic://{}:{}", a.host, a.port))
        .client_id(a.client_id.clone())
        .mqtt_version(a.version)
        .keep_alive(30)
        .clean_start(true)
        .reconnect(false)
        .build();
    let mut cfg = TokioAsyncClientConfig::builder()
        .auto_reconnect(false)
        .connect_timeout_ms(a.timeout.as_millis() as u64)
        .subscribe_timeout_ms(a.timeout.as_millis() as u64)
        .publish_ack_timeout_ms(a.timeout.as_millis() as u64)
        .quic_enable_0rtt(false);
    if a.insecure {
        cfg = cfg.quic_insecure_skip_verify(true);
    } else if let Some(ca) = &a.ca {
        let pem =
            std::fs::read_to_string(ca).map_err(|e| Failure::Run(format!("--ca {ca}: {e}")))?;
        cfg = cfg.quic_custom_root_ca_pem(pem);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = TokioAsyncMqttClient::new(opts, Box::new(Forward { tx }), cfg.build())
        .await
        .map_err(|e| Failure::Run(format!("creating the client: {e}")))?;

    let deadline = tokio::time::Instant::now() + a.timeout;
    let connected = client.connect_sync().await?;
    emit(connected_json(&connected, Mode::Single, a.version));
    if !connected.is_success() {
        return Err(Failure::Run(format!(
            "CONNECT refused: reason code {}",
            connected.reason_code
        )));
    }

    match a.action {
        Action::Sub => {
            for topic in &a.topics {
                let r = client.subscribe_sync(topic, a.qos).await?;
                emit(subscribed_json(&r, topic, None));
                if !granted(&r.reason_codes) {
                    return Err(Failure::Run(format!(
                        "SUBSCRIBE {topic} refused: {:?}",
                        r.reason_codes
                    )));
                }
            }
            let mut got = 0;
            while got < a.count {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(m)) => {
                        emit(message_json(&m, Mode::Single, None));
                        got += 1;
                    }
                    Ok(None) => return Err(Failure::Run("client ended".into())),
                    Err(_) => {
                        return Err(Failure::Run(format!(
                            "timed out after {:?} with {got} of {} messages",
                            a.timeout, a.count
                        )))
                    }
                }
            }
        }
        Action::Pub => {
            for topic in &a.topics {
                for payload in payloads(a) {
                    let r = client
                        .publish_sync(topic, payload.as_bytes(), a.qos, a.retain)
                        .await?;
                    emit(published_json(
                        topic,
                        &payload,
                        a.qos,
                        (a.qos > 0).then_some(&r),
                        None,
                    ));
                    if !r.is_success() {
                        return Err(Failure::Run(format!(
                            "PUBLISH {topic} refused: {}",
                            r.reason_description()
                        )));
                    }
                }
            }
        }
    }
    // flowsdk 0.7.0's QuicTransport::close() writes DISCONNECT, then calls quinn's
    // Connection::close() at once; quinn "does not ensure delivery of outstanding data", so
    // whatever is still buffered on the stream is dropped: the DISCONNECT nearly always, and a
    // QoS 0 PUBLISH queued just before it in ~10% of runs. A PINGREQ/PINGRESP round trip on the
    // (single, ordered) stream first proves the broker has every PUBLISH. The DISCONNECT is still
    // lost; the broker sees a QUIC CONNECTION_CLOSE (application code 0) without it.
    if a.action == Action::Pub {
        let ping = client.ping_sync().await?;
        if !ping.success {
            return Err(Failure::Run("no PINGRESP before DISCONNECT".into()));
        }
    }
    client.disconnect_sync().await?;
    let _ = client.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// multi stream: QuicMqttEngine (sans-I/O) driven by a tokio UDP loop
// ---------------------------------------------------------------------------------------------

/// Accepts any server certificate (`--insecure`); signatures are still checked for the handshake.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn rustls_config(a: &Args) -> Result<rustls::ClientConfig, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Failure::Run(format!("rustls: {e}")))?;
    let mut cfg = if a.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth()
    } else {
        let ca = a.ca.as_deref().unwrap_or_default();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .map_err(|e| Failure::Run(format!("--ca {ca}: {e}")))?
        {
            let cert = cert.map_err(|e| Failure::Run(format!("--ca {ca}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Failure::Run(format!("--ca {ca}: {e}")))?;
        }
        if roots.is_empty() {
            return Err(Failure::Run(format!("--ca {ca}: no certificate in it")));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    cfg.alpn_protocols = a.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(cfg)
}

/// What the multi-stream driver is waiting for.
#[derive(PartialEq, Debug)]
enum Phase {
    Connecting,
    /// SUBSCRIBEs or PUBLISHes sent; waiting for SUBACKs / acks / messages.
    Working,
    /// Publisher: every ack in; the FIN of each data stream sent, waiting for the broker to
    /// acknowledge it, so no PUBLISH is still in flight when DISCONNECT goes on the control stream.
    Draining,
    /// DISCONNECT queued; waiting for it and CONNECTION_CLOSE to go out.
    Closing,
}

struct Multi<'a> {
    a: &'a Args,
    engine: QuicMqttEngine,
    socket: tokio::net::UdpSocket,
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    phase: Phase,
    /// packet id -> (topic, stream) of SUBSCRIBEs awaiting SUBACK.
    subs: HashMap<u16, (String, u64)>,
    /// packet id -> (topic, payload) of QoS 1/2 PUBLISHes awaiting their ack.
    pubs: HashMap<u16, (String, String)>,
    /// Data streams we opened.
    streams: Vec<u64>,
    /// Pub streams whose FIN the broker has not acknowledged yet.
    draining: HashSet<u64>,
    /// Stream of the last PublishReceived (emitted just before MessageReceived).
    last_stream: Option<u64>,
    received: usize,
}

impl Multi<'_> {
    fn flush(&mut self) {
        self.out.extend(self.engine.take_outgoing_datagrams());
        while let Some((dest, data)) = self.out.pop_front() {
            match self.socket.try_send_to(&data, dest) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.out.push_front((dest, data));
                    break;
                }
                Err(e) => eprintln!("UDP send to {dest}: {e}"),
            }
        }
    }

    /// Starts the work once CONNACK is in: one data stream per topic.
    fn start(&mut self) -> Result<(), Failure> {
        for topic in self.a.topics.clone() {
            let stream = self.engine.open_data_stream()?;
            self.streams.push(stream);
            match self.a.action {
                Action::Sub => {
                    let cmd = SubscribeCommand::builder()
                        .add_topic(topic.clone(), self.a.qos)
                        .build()
                        .map_err(|e| Failure::Run(format!("SUBSCRIBE {topic}: {e:?}")))?;
                    let pid = self.engine.subscribe_on(stream, cmd)?;
                    self.subs.insert(pid, (topic, stream));
                }
                Action::Pub => {
                    for payload in payloads(self.a) {
                        let cmd = PublishCommand::builder()
                            .topic(topic.clone())
                            .payload(payload.clone())
                            .qos(self.a.qos)
                            .retain(self.a.retain)
                            .build()
                            .map_err(|e| Failure::Run(format!("PUBLISH {topic}: {e:?}")))?;
                        match self.engine.publish_on(stream, cmd)? {
                            Some(pid) if self.a.qos > 0 => {
                                self.pubs.insert(pid, (topic.clone(), payload));
                            }
                            _ => emit(published_json(&topic, &payload, 0, None, Some(stream))),
                        }
                    }
                }
            }
        }
        self.phase = Phase::Working;
        self.maybe_finish()
    }

    /// Moves on once the work is done.
    fn maybe_finish(&mut self) -> Result<(), Failure> {
        if self.phase != Phase::Working {
            return Ok(());
        }
        match self.a.action {
            Action::Sub => {
                if self.received >= self.a.count {
                    self.close()?;
                }
            }
            Action::Pub => {
                if self.pubs.is_empty() && self.a.no_drain {
                    // flowsdk's disconnect_and_close flushes the control stream only: the
                    // PUBLISHes may still be in flight on their data streams.
                    self.close()?;
                } else if self.pubs.is_empty() {
                    for s in self.streams.clone() {
                        self.engine.finish_stream(s)?;
                        self.draining.insert(s);
                    }
                    self.phase = Phase::Draining;
                }
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), Failure> {
        self.engine.disconnect_and_close(0, b"done")?;
        self.phase = Phase::Closing;
        Ok(())
    }

    fn on_event(&mut self, ev: MqttEvent) -> Result<(), Failure> {
        match ev {
            MqttEvent::Connected(r) => {
                emit(connected_json(&r, Mode::Multi, self.a.version));
                if !r.is_success() {
                    return Err(Failure::Run(format!(
                        "CONNECT refused: reason code {}",
                        r.reason_code
                    )));
                }
                if self.phase == Phase::Connecting {
                    self.start()?;
                }
            }
            MqttEvent::Subscribed(r) => {
                let (topic, stream) = self.subs.remove(&r.packet_id).unwrap_or_default();
                emit(subscribed_json(&r, &topic, Some(stream)));
                if !granted(&r.reason_codes) {
                    return Err(Failure::Run(format!(
                        "SUBSCRIBE {topic} refused: {:?}",
                        r.reason_codes
                    )));
                }
            }
            MqttEvent::Published(r) => {
                if let Some((topic, payload)) = r.packet_id.and_then(|p| self.pubs.remove(&p)) {
                    let stream = self.stream_of(&topic);
                    emit(published_json(&topic, &payload, r.qos, Some(&r), stream));
                    if !r.is_success() {
                        return Err(Failure::Run(format!(
                            "PUBLISH {topic} refused: {}",
                            r.reason_description()
                        )));
                    }
                }
                self.maybe_finish()?;
            }
            MqttEvent::PublishReceived { stream, .. } => self.last_stream = stream,
            MqttEvent::MessageReceived(m) => {
                emit(message_json(&m, Mode::Multi, self.last_stream.take()));
                self.received += 1;
                self.maybe_finish()?;
            }
            MqttEvent::StreamClosed {
                stream_id,
                by_peer: false,
                ..
            } => {
                if self.draining.remove(&stream_id)
                    && self.draining.is_empty()
                    && self.phase == Phase::Draining
                {
                    self.close()?;
                }
            }
            MqttEvent::StreamReset {
                stream_id,
                error_code,
            }
            | MqttEvent::StreamStopped {
                stream_id,
                error_code,
            } => {
                return Err(Failure::Run(format!(
                    "broker aborted stream {stream_id} (error {error_code:#x})"
                )));
            }
            MqttEvent::OperationFailed {
                operation,
                packet_id,
                error,
            } => {
                return Err(Failure::Run(format!(
                    "{operation:?} {packet_id:?} failed: {error}"
                )));
            }
            MqttEvent::Error(e) => return Err(Failure::Run(format!("flowsdk: {e}"))),
            MqttEvent::DisconnectReceived { reason_code, .. } => {
                return Err(Failure::Run(format!(
                    "broker sent DISCONNECT {reason_code:#x}"
                )));
            }
            MqttEvent::TransportClosed { reason, .. } if self.phase != Phase::Closing => {
                return Err(Failure::Run(format!("QUIC connection lost: {reason}")));
            }
            MqttEvent::Disconnected(_) if self.phase != Phase::Closing => {
                return Err(Failure::Run("disconnected".into()));
            }
            _ => {}
        }
        Ok(())
    }

    fn stream_of(&self, topic: &str) -> Option<u64> {
        self.a
            .topics
            .iter()
            .position(|t| t == topic)
            .and_then(|i| self.streams.get(i).copied())
    }
}

async fn run_multi(a: &Args) -> Result<(), Failure> {
    let server_name = a.server_name.clone().unwrap_or_else(|| a.host.clone());
    let addr = (a.host.as_str(), a.port)
        .to_socket_addrs()
        .map_err(|e| Failure::Run(format!("resolving {}: {e}", a.host)))?
        .next()
        .ok_or_else(|| Failure::Run(format!("no address for {}", a.host)))?;
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("literal");
    let socket = tokio::net::UdpSocket::bind(bind).await?;
    let opts = MqttClientOptions::builder()
        .client_id(a.client_id.clone())
        .mqtt_version(a.version)
        .keep_alive(30)
        .clean_start(true)
        .reconnect(false)
        .build();
    let mut engine = QuicMqttEngine::new(opts)?;
    engine.connect(addr, &server_name, rustls_config(a)?, Instant::now())?;
    let mut m = Multi {
        a,
        engine,
        socket,
        out: VecDeque::new(),
        phase: Phase::Connecting,
        subs: HashMap::new(),
        pubs: HashMap::new(),
        streams: Vec::new(),
        draining: HashSet::new(),
        last_stream: None,
        received: 0,
    };
    let deadline = Instant::now() + a.timeout;
    let mut buf = vec![0u8; 65536];
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        if Instant::now() > deadline {
            let what = match m.phase {
                Phase::Connecting => "CONNACK".to_string(),
                Phase::Working if a.action == Action::Sub => {
                    format!("{} of {} messages", m.received, a.count)
                }
                Phase::Working => format!("{} acks", m.pubs.len()),
                Phase::Draining => "the broker to acknowledge the data streams' FIN".into(),
                Phase::Closing => "the close".into(),
            };
            return Err(Failure::Run(format!(
                "timed out after {:?} waiting for {what}",
                a.timeout
            )));
        }
        tokio::select! {
            r = m.socket.recv_from(&mut buf) => {
                let (len, from) = r?;
                if from == addr {
                    m.engine.handle_datagram(buf[..len].to_vec(), from, Instant::now());
                }
            }
            _ = tick.tick() => {}
        }
        for ev in m.engine.handle_tick(Instant::now()) {
            m.on_event(ev)?;
        }
        m.flush();
        if m.phase == Phase::Closing && m.engine.disconnect_complete() {
            // one more tick so CONNECTION_CLOSE leaves
            for ev in m.engine.handle_tick(Instant::now()) {
                m.on_event(ev)?;
            }
            m.flush();
            return Ok(());
        }
    }
}

fn main() {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(Failure::Usage(msg)) => {
            if !msg.is_empty() {
                eprintln!("flowsdk-client: {msg}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
        Err(Failure::Run(msg)) => {
            eprintln!("flowsdk-client: {msg}");
            std::process::exit(1);
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        match args.mode {
            Mode::Single => run_single(&args).await,
            Mode::Multi => run_multi(&args).await,
        }
    });
    match result {
        Ok(()) => {
            emit(json!({ "event": "done" }));
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("flowsdk-client: {msg}\n{USAGE}");
            std::process::exit(2);
        }
        Err(Failure::Run(msg)) => {
            eprintln!("flowsdk-client: {msg}");
            std::process::exit(1);
        }
    }
    rt.shutdown_timeout(Duration::from_millis(200));
}
