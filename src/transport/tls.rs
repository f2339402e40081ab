//! The certificate of a `wss://` listener. PEM text from the options becomes a rustls server
//! configuration (the `ring` provider: no OpenSSL, nothing to build with cmake) once, when the
//! server is created, so a bad certificate or key is an error there. The configuration sits
//! behind a lock as an `Arc`: replacing it serves the new certificate to the next handshakes
//! while connections already open keep theirs, with no restart.
//!
//! Bounds: each connection's rustls buffers are rustls's own defaults, at most 64 KiB of
//! encrypted records waiting for the kernel (past it a write waits, so the session's outbox
//! sees backpressure as over plain TCP, less those 64 KiB), up to 16 KiB decrypted and not yet
//! read, and the record being read (at most about 16 KiB).

use std::sync::Arc;

use parking_lot::RwLock;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig as RustlsConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// The certificate a listener serves, replaceable while it runs.
pub struct TlsSlot(RwLock<TlsAcceptor>);

impl TlsSlot {
  /// Checks and loads a certificate; the error says what is wrong with it, in words.
  pub fn new(tls: &TlsConfig) -> Result<Self, String> {
    Ok(Self(RwLock::new(acceptor(tls)?)))
  }

  /// Serves `tls` to the handshakes that start from now on; on an error the certificate in
  /// use stays.
  pub fn replace(&self, tls: &TlsConfig) -> Result<(), String> {
    let acceptor = acceptor(tls)?;
    *self.0.write() = acceptor;
    Ok(())
  }

  /// What the next handshake uses.
  pub fn acceptor(&self) -> TlsAcceptor {
    self.0.read().clone()
  }
}

fn certificates(pem: &[u8], option: &str) -> Result<Vec<CertificateDer<'static>>, String> {
  CertificateDer::pem_slice_iter(pem)
    .collect::<Result<Vec<_>, _>>()
    .map_err(|error| format!("tls.{option} is not valid PEM: {error}"))
}

fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, String> {
  let mut chain = certificates(&tls.cert_pem, "cert")?;
  if chain.is_empty() {
    return Err("tls.cert holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
  }
  if let Some(ca) = &tls.ca_pem {
    chain.extend(certificates(ca, "ca")?);
  }
  let key = PrivateKeyDer::from_pem_slice(&tls.key_pem)
    .map_err(|error| format!("tls.key holds no usable PEM private key: {error}"))?;
  let mut config = RustlsConfig::builder_with_provider(Arc::new(ring::default_provider()))
    .with_safe_default_protocol_versions()
    .map_err(|error| format!("TLS cannot be set up: {error}"))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|error| format!("tls.cert and tls.key cannot be used together: {error}"))?;
  // WebSockets upgrade over HTTP/1.1; a client offering h2 only gets no protocol it can use.
  config.alpn_protocols = vec![b"http/1.1".to_vec()];
  Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
  use super::*;

  fn config(cert: &str, key: &str) -> TlsConfig {
    TlsConfig {
      cert_pem: cert.as_bytes().to_vec(),
      key_pem: key.as_bytes().to_vec(),
      ca_pem: None,
    }
  }

  fn error_of(tls: &TlsConfig) -> String {
    match TlsSlot::new(tls) {
      Ok(_) => panic!("accepted a bad certificate"),
      Err(error) => error,
    }
  }

  #[test]
  fn a_certificate_that_is_not_pem_is_refused_in_words() {
    assert!(error_of(&config("not a certificate", "")).contains("tls.cert holds no PEM certificate"));
    let broken = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
    assert!(error_of(&config(broken, "")).contains("tls.cert"));
  }
}
