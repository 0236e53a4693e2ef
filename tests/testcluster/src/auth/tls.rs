//! A throwaway certificate authority, serving certificate and client certificate for `--tls`,
//! made fresh at every start (rcgen), and the rustls server configurations using them (aws-lc-rs,
//! the workspace's one crypto provider).

use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::AuthError;

/// PEM and DER of a CA and of a serving and a client certificate it signed.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_pem: String,
    pub cert_pem: String,
    /// PKCS#8 PEM of the serving key.
    pub key_pem: String,
    /// A client certificate (CN `ferry-client`, client auth only), for mutual TLS.
    pub client_cert_pem: String,
    /// PKCS#8 PEM of the client key.
    pub client_key_pem: String,
    ca_der: CertificateDer<'static>,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

fn tls_err(what: &str) -> impl Fn(rcgen::Error) -> AuthError + '_ {
    move |e| AuthError::Tls(format!("{what}: {e}"))
}

impl TlsMaterial {
    /// A new CA and a serving certificate for `hosts` (DNS names or IP addresses, e.g.
    /// `["localhost", "127.0.0.1"]`).
    pub fn generate(hosts: &[&str]) -> Result<Self, AuthError> {
        let ca_key = KeyPair::generate().map_err(tls_err("generating the CA key"))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_err("CA parameters"))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ferry-testcluster-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)
            .map_err(tls_err("self-signing the CA"))?;

        let key = KeyPair::generate().map_err(tls_err("generating the serving key"))?;
        let names: Vec<String> = hosts.iter().map(|h| (*h).to_string()).collect();
        let mut params = CertificateParams::new(names).map_err(tls_err("serving certificate"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ferry-testcluster");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params
            .signed_by(&key, &ca)
            .map_err(tls_err("signing the serving certificate"))?;
        let client_key = KeyPair::generate().map_err(tls_err("generating the client key"))?;
        let mut client_params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_err("client certificate"))?;
        client_params
            .distinguished_name
            .push(DnType::CommonName, "ferry-client");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let client = client_params
            .signed_by(&client_key, &ca)
            .map_err(tls_err("signing the client certificate"))?;
        Ok(TlsMaterial {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
            ca_der: ca.der().clone(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }

    /// The kubeconfig `certificate-authority-data` value (base64 of the CA PEM).
    pub fn ca_data(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes())
    }

    /// DER of the CA certificate, for clients that take a root store.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// A rustls server configuration serving the certificate chain (ALPN: HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, AuthError> {
        self.config(false)
    }

    /// As [`Self::server_config`], and the handshake fails unless the client presents a
    /// certificate signed by the CA (mutual TLS).
    pub fn server_config_requiring_client_cert(&self) -> Result<Arc<ServerConfig>, AuthError> {
        self.config(true)
    }

    fn config(&self, client_auth: bool) -> Result<Arc<ServerConfig>, AuthError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| AuthError::Tls(format!("TLS versions: {e}")))?;
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(self.ca_der.clone())
                .map_err(|e| AuthError::Tls(format!("client CA: {e}")))?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| AuthError::Tls(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(
                vec![self.cert_der.clone(), self.ca_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .map_err(|e| AuthError::Tls(format!("serving certificate: {e}")))?;
        // HTTP/1.1 only: works whether or not the server speaks h2, and watch streams need
        // nothing more.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConnection};

    /// Moves TLS records between two in-memory connections until both are quiet.
    fn handshake(
        client: &mut ClientConnection,
        server: &mut ServerConnection,
    ) -> Result<(), rustls::Error> {
        for _ in 0..20 {
            let mut buf = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buf).expect("write to vec");
            }
            if !buf.is_empty() {
                server
                    .read_tls(&mut buf.as_slice())
                    .expect("read from slice");
                server.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut buf).expect("write to vec");
            }
            if !buf.is_empty() {
                client
                    .read_tls(&mut buf.as_slice())
                    .expect("read from slice");
                client.process_new_packets()?;
            }
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish");
    }

    fn client_for(ca: &CertificateDer<'static>, host: &'static str) -> ClientConnection {
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone()).expect("CA certificate");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        ClientConnection::new(Arc::new(config), ServerName::try_from(host).expect("name"))
            .expect("client")
    }

    #[test]
    fn a_client_trusting_the_ca_verifies_the_server_by_ip_and_name() {
        let tls = TlsMaterial::generate(&["localhost", "127.0.0.1"]).expect("generate");
        assert!(tls.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(tls.ca_data())
            .expect("base64");
        assert_eq!(decoded, tls.ca_pem.as_bytes());
        let server_config = tls.server_config().expect("server config");
        for host in ["127.0.0.1", "localhost"] {
            let mut client = client_for(tls.ca_der(), host);
            let mut server = ServerConnection::new(server_config.clone()).expect("server");
            handshake(&mut client, &mut server).unwrap_or_else(|e| panic!("{host}: {e}"));
        }
        // Not valid for other names, and not trusted by a client with another CA.
        let mut client = client_for(tls.ca_der(), "example.com");
        let mut server = ServerConnection::new(server_config.clone()).expect("server");
        assert!(handshake(&mut client, &mut server).is_err());
        let other = TlsMaterial::generate(&["127.0.0.1"]).expect("generate");
        let mut client = client_for(other.ca_der(), "127.0.0.1");
        let mut server = ServerConnection::new(server_config).expect("server");
        assert!(handshake(&mut client, &mut server).is_err());
    }
}
