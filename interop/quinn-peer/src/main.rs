//! quinn-peer: an hq-interop (HTTP/0.9 over QUIC) client and server built on quinn.
//!
//! It is the reference peer that mquictt's from-scratch QUIC stack is tested against.
//! It speaks the quic-interop-runner endpoint contract (ALPN `hq-interop`; the client
//! sends `GET /path\r\n` + FIN on a fresh bidi stream, the server answers with the
//! file's bytes + FIN) and reads the runner's environment variables (ROLE, TESTCASE,
//! REQUESTS, SSLKEYLOGFILE, WWW, DOWNLOADS) as a fallback to flags.

mod client;
mod common;
mod resumption;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status the quic-interop-runner expects for an unsupported test case.
pub const EXIT_UNSUPPORTED: u8 = 127;

#[derive(Parser, Debug)]
#[command(
    name = "quinn-peer",
    version,
    about = "hq-interop (HTTP/0.9 over QUIC) client and server on quinn",
    long_about = "hq-interop (HTTP/0.9 over QUIC) client and server on quinn.\n\n\
                  Without a subcommand the role is taken from the ROLE environment variable \
                  (server|client), as the quic-interop-runner does."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve files (and virtual /bench/<N> files) over hq-interop.
    Server(server::ServerArgs),
    /// Fetch URLs over hq-interop.
    Client(client::ClientArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cmd = match cli.cmd {
        Some(c) => c,
        None => match std::env::var("ROLE").ok().as_deref() {
            Some("server") => Cmd::Server(server::ServerArgs::parse_from(["quinn-peer"])),
            Some("client") => Cmd::Client(client::ClientArgs::parse_from(["quinn-peer"])),
            Some(other) => {
                eprintln!("quinn-peer: unknown ROLE={other:?} (expected server or client)");
                return ExitCode::from(EXIT_UNSUPPORTED);
            }
            None => {
                eprintln!(
                    "quinn-peer: no subcommand and no ROLE in the environment; \
                     try `quinn-peer server --help` or `quinn-peer client --help`"
                );
                return ExitCode::from(2);
            }
        },
    };

    // Exactly one crypto backend is compiled in; make it the process default too so
    // nothing inside quinn/rustls has to guess.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quinn-peer: cannot start tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let res = match cmd {
        Cmd::Server(args) => rt.block_on(server::run(args)),
        Cmd::Client(args) => rt.block_on(client::run(args)),
    };
    // Don't wait for lingering per-stream tasks.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    match res {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("quinn-peer: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
