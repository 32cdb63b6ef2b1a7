//! Observing TLS session resumption from outside rustls, for the "resumption" and "zerortt"
//! test cases. quinn does not expose rustls' `handshake_kind()`, so each side watches what
//! only a full handshake does (RFC 8446 §2.2, §4.6.1):
//!
//! - client: a resumed (PSK) handshake carries no Certificate, so the server certificate
//!   verifier is not called; [`CountingVerifier`] counts `verify_server_cert` calls.
//! - server: a resumed handshake has no CertificateVerify, so the certificate key never signs;
//!   [`CountingCert`] hands rustls a key whose signatures are counted (one instance per
//!   connection, so the count belongs to that connection).
//!
//! And the client learns that a ticket arrived (NewSessionTicket, RFC 8446 §4.6.1) from
//! [`TicketStore`], a session store that signals inserts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{DigitallySignedStruct, NamedGroup, SignatureAlgorithm, SignatureScheme};

/// A server certificate verifier that counts the certificates it was asked to verify.
#[derive(Debug)]
pub struct CountingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    count: AtomicUsize,
}

impl CountingVerifier {
    pub fn new(inner: Arc<dyn ServerCertVerifier>) -> Self {
        Self { inner, count: AtomicUsize::new(0) }
    }

    /// Server certificates verified so far (one per full handshake).
    pub fn verified(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl ServerCertVerifier for CountingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

/// rustls' in-memory client session cache, plus a signal for every TLS 1.3 ticket stored.
#[derive(Debug)]
pub struct TicketStore {
    inner: ClientSessionMemoryCache,
    tickets: AtomicUsize,
    notify: tokio::sync::Notify,
}

impl TicketStore {
    pub fn new() -> Self {
        Self { inner: ClientSessionMemoryCache::new(64), tickets: AtomicUsize::new(0), notify: tokio::sync::Notify::new() }
    }

    /// Tickets received so far.
    pub fn received(&self) -> usize {
        self.tickets.load(Ordering::SeqCst)
    }

    /// Resolves once more than `seen` tickets have been received.
    pub async fn wait_for_more_than(&self, seen: usize) {
        loop {
            let notified = self.notify.notified();
            if self.received() > seen {
                return;
            }
            notified.await;
        }
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group)
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.set_tls12_session(server_name, value)
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name)
    }

    fn insert_tls13_ticket(&self, server_name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.inner.insert_tls13_ticket(server_name, value);
        self.tickets.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn take_tls13_ticket(&self, server_name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}

/// The server's one certificate, with a key that counts its signatures (CertificateVerify).
#[derive(Debug)]
pub struct CountingCert {
    key: Arc<CertifiedKey>,
    signatures: Arc<AtomicUsize>,
}

impl CountingCert {
    pub fn new(certs: Vec<CertificateDer<'static>>, key: Arc<dyn SigningKey>) -> Self {
        let signatures = Arc::new(AtomicUsize::new(0));
        let counting = Arc::new(CountingKey { inner: key, signatures: signatures.clone() });
        Self { key: Arc::new(CertifiedKey::new(certs, counting)), signatures }
    }

    /// Signatures made so far (one per full handshake).
    pub fn signatures(&self) -> usize {
        self.signatures.load(Ordering::SeqCst)
    }
}

impl ResolvesServerCert for CountingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.clone())
    }
}

#[derive(Debug)]
struct CountingKey {
    inner: Arc<dyn SigningKey>,
    signatures: Arc<AtomicUsize>,
}

impl SigningKey for CountingKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let inner = self.inner.choose_scheme(offered)?;
        Some(Box::new(CountingSigner { inner, signatures: self.signatures.clone() }))
    }

    fn public_key(&self) -> Option<rustls::pki_types::SubjectPublicKeyInfoDer<'_>> {
        self.inner.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.algorithm()
    }
}

#[derive(Debug)]
struct CountingSigner {
    inner: Box<dyn Signer>,
    signatures: Arc<AtomicUsize>,
}

impl Signer for CountingSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.signatures.fetch_add(1, Ordering::SeqCst);
        self.inner.sign(message)
    }

    fn scheme(&self) -> SignatureScheme {
        self.inner.scheme()
    }
}
