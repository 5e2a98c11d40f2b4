//! A TLS listener for `axum::serve`: TCP connections are accepted and their
//! handshakes run concurrently, each in its own task with a timeout, so one
//! slow client cannot hold up the others. TLS-ALPN-01 validation handshakes
//! (ALPN `acme-tls/1`) are answered with the challenge certificate [`Certs`]
//! gives for the name, looked up before the handshake goes on (with a
//! shared database that may be a query), and end at the handshake; they
//! never reach HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::Acceptor;
use rustls::sign::SingleCertAndKey;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use super::{ACME_TLS_ALPN, Certs, provider};

/// Longest a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        certs: Arc<Certs>,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(128);
        let acceptor = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = tcp.accept() => accepted,
                    _ = tx.closed() => break,
                };
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, as axum does.
                        tracing::warn!(error = %e, "accepting a TLS connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (config, certs) = (config.clone(), certs.clone());
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let handshake = handshake(stream, config, &certs);
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let mut stream = stream;
                    if stream.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
                        tracing::debug!(%peer, "answered a TLS-ALPN-01 validation");
                        let _ = stream.shutdown().await;
                        return;
                    }
                    let _ = tx.send((stream, peer)).await;
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            acceptor,
        })
    }
}

/// Reads the ClientHello, then shakes hands with `config`, or, for a
/// TLS-ALPN-01 validation, with the challenge certificate of its name.
async fn handshake(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    certs: &Certs,
) -> std::io::Result<TlsStream<TcpStream>> {
    let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
    let hello = start.client_hello();
    let acme = hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
    if !acme {
        return start.into_stream(config).await;
    }
    let name = hello.server_name().map(str::to_owned);
    let Some(key) = (match name {
        Some(name) => certs.alpn_challenge(&name).await,
        None => None,
    }) else {
        return Err(std::io::Error::other(
            "no TLS-ALPN-01 challenge for this name",
        ));
    };
    let mut answer = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    answer.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    start.into_stream(Arc::new(answer)).await
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Stops accepting: axum drops the listener when shutdown begins.
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(pair) => pair,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
