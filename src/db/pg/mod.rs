//! PostgreSQL: connecting (TLS per `sslmode`, retries with backoff), the binary COPY codec,
//! and SQL text helpers.
//!
//! `sslmode` follows libpq: `disable`; `allow`/`prefer` (TLS when the server offers it, the
//! certificate not checked); `require` (TLS, not checked); `verify-ca` and `verify-full` (TLS
//! checked against `sslrootcert`, or the system's roots). Every session runs in UTC with
//! standard-conforming strings, so literals and timestamps mean the same everywhere.

pub mod decode;
pub mod encode;
pub mod load;
pub mod read;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{DbConnection, DbError, backoff};

/// What a session is set up with before anything else runs.
const SESSION_SETUP: &str = "SET TimeZone = 'UTC'; SET standard_conforming_strings = on; \
SET client_min_messages = warning; SET application_name = 'etl'";

/// A ready-to-use PostgreSQL connection target.
#[derive(Clone)]
pub struct PgTarget {
    /// The pipeline's connection (name, URL, retries).
    pub conn: DbConnection,
    config: Config,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgTarget({:?})", self.conn)
    }
}

/// A connected client; the connection task ends when this is dropped.
pub struct PgSession {
    /// The client.
    pub client: Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PgSession {
    fn drop(&mut self) {
        // Closing the socket makes the server end the session (and roll back what is open).
        self.task.abort();
    }
}

impl PgTarget {
    /// Parses a connection's URL, with libpq's `sslmode` values.
    pub fn new(conn: DbConnection) -> Result<Self, DbError> {
        let bad = |reason: String| DbError::Url {
            connection: conn.name.clone(),
            reason,
        };
        let mut url = url::Url::parse(&conn.url).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(bad(format!(
                "a PostgreSQL URL starts with postgres://, not {}://",
                url.scheme()
            )));
        }
        let mut ssl = "prefer".to_string();
        let mut root_cert: Option<String> = None;
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter_map(|(k, v)| match k.as_ref() {
                "sslmode" => {
                    ssl = v.into_owned();
                    None
                }
                "sslrootcert" => {
                    root_cert = Some(v.into_owned());
                    None
                }
                _ => Some((k.into_owned(), v.into_owned())),
            })
            .collect();
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        let mut config: Config = url
            .as_str()
            .parse()
            .map_err(|e: tokio_postgres::Error| bad(e.to_string()))?;
        let (mode, verify) = match ssl.as_str() {
            "disable" => (SslMode::Disable, false),
            "allow" | "prefer" => (SslMode::Prefer, false),
            "require" => (SslMode::Require, false),
            "verify-ca" | "verify-full" => (SslMode::Require, true),
            other => {
                return Err(bad(format!(
                    "unknown sslmode `{other}` (disable, allow, prefer, require, verify-ca, verify-full)"
                )));
            }
        };
        config.ssl_mode(mode);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.keepalives_idle(Duration::from_secs(60));
        let tls = make_tls(verify, root_cert.as_deref()).map_err(bad)?;
        Ok(Self { conn, config, tls })
    }

    /// Host, port and database, for messages.
    pub fn display(&self) -> String {
        self.conn.display()
    }

    /// Connects, retrying transient failures (refused, timed out, the server starting up or
    /// full) with backoff; authentication and missing databases fail at once.
    pub async fn connect(&self) -> Result<PgSession, DbError> {
        let attempts = self.conn.retries + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.config.connect(self.tls.clone()).await {
                Ok((client, connection)) => {
                    let task = tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    let session = PgSession { client, task };
                    session
                        .client
                        .batch_execute(SESSION_SETUP)
                        .await
                        .map_err(|e| self.query_error(&e))?;
                    return Ok(session);
                }
                Err(e) => {
                    last = error_text(&e);
                    if !transient(&e) {
                        return Err(self.connect_error(attempt, last));
                    }
                    if attempt < attempts {
                        tracing::warn!(connection = %self.conn.name, attempt, error = %last, "cannot connect; retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                }
            }
        }
        Err(self.connect_error(attempts, last))
    }

    fn connect_error(&self, attempts: u32, reason: String) -> DbError {
        DbError::Connect {
            connection: self.conn.name.clone(),
            host: self.display(),
            attempts,
            reason,
        }
    }

    /// A statement's failure as a user-facing error.
    pub fn query_error(&self, e: &tokio_postgres::Error) -> DbError {
        DbError::Query {
            connection: self.conn.name.clone(),
            reason: error_text(e),
        }
    }
}

/// The server's message (with its detail and hint), or the client's.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = db.message().to_string();
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

fn transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => matches!(code.code(), "57P03" | "53300" | "08000" | "08001" | "08006"),
        None => e.as_db_error().is_none(),
    }
}

/// A rustls connector: checking certificates against `root_cert` (or the system roots) when
/// `verify`, otherwise accepting any certificate (libpq's `prefer` and `require`).
fn make_tls(verify: bool, root_cert: Option<&str>) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match root_cert {
            Some(path) => {
                // A regular file of bounded size: a device or a FIFO would never end.
                let pem = crate::load::read_text(std::path::Path::new(path))
                    .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
                let mut reader = std::io::BufReader::new(pem.as_bytes());
                for cert in rustls_pemfile_certs(&mut reader)? {
                    roots.add(cert).map_err(|e| e.to_string())?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// Reads PEM certificates.
fn rustls_pemfile_certs(
    reader: &mut dyn std::io::BufRead,
) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut text = Vec::new();
    reader.read_to_end(&mut text).map_err(|e| e.to_string())?;
    CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("sslrootcert is not a PEM certificate: {e}"))
}

/// Accepts any server certificate (libpq's `require`: encrypted, not verified).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<PgTarget, DbError> {
        PgTarget::new(DbConnection {
            name: "w".into(),
            url: url.into(),
            retries: 0,
        })
    }

    #[test]
    fn urls_with_libpq_ssl_modes_parse_and_bad_ones_say_why() {
        assert!(target("postgres://u:p@h:5432/db?sslmode=disable").is_ok());
        assert!(target("postgres://u:p@h/db?sslmode=verify-full").is_ok());
        let e = target("postgres://u:p@h/db?sslmode=maybe").unwrap_err();
        assert!(e.to_string().contains("unknown sslmode `maybe`"), "{e}");
        let e = target("mysql://u:p@h/db").unwrap_err();
        assert!(e.to_string().contains("postgres://"), "{e}");
        assert!(!e.to_string().contains(":p@"));
    }
}
