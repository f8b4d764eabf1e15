//! Setting up the HTTPS clients (meshStack, SCIM, the AWS SDKs): they verify servers against
//! the system's CA certificates, which rustls-native-certs loads (from `SSL_CERT_FILE` and
//! `SSL_CERT_DIR` when set, else from the system's store). A host without them, such as a
//! `scratch` or slim image without the `ca-certificates` package, is an error that says so:
//! reqwest refuses to build a client then, and the AWS SDK would fail every request (or assert,
//! in a debug build).

use crate::retry::error_chain;
use std::sync::OnceLock;

/// An HTTPS client could not be set up on this host.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsSetupError {
    #[error(
        "cannot verify {client}'s HTTPS certificate: no CA certificates were found on this host ({cause}); fix: install the CA certificates (Debian/Ubuntu: the ca-certificates package, `apt-get install ca-certificates`; Alpine: `apk add ca-certificates`; a scratch or distroless image: copy /etc/ssl/certs/ca-certificates.crt into it), or point SSL_CERT_FILE (a PEM bundle) or SSL_CERT_DIR at them"
    )]
    NoCaCertificates { client: &'static str, cause: String },
    #[error("cannot set up the HTTPS client for {client}: {cause}")]
    Other { client: &'static str, cause: String },
}

/// `builder` built, or why it cannot be: `client` names what it is for ("meshStack", "the SCIM
/// endpoint").
pub fn build(
    builder: reqwest::ClientBuilder,
    client: &'static str,
) -> Result<reqwest::Client, TlsSetupError> {
    builder.build().map_err(|e| classify(client, &e))
}

/// Whether this host has CA certificates to verify `client`'s servers with. Checked once per
/// process: the AWS SDKs load the same certificates once (rustls-native-certs, honouring the
/// same variables) and would fail every request without them.
pub fn check(client: &'static str) -> Result<(), TlsSetupError> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        reqwest::Client::builder()
            .build()
            .map(drop)
            .map_err(|e| error_chain(&e))
    });
    match probe {
        Ok(()) => Ok(()),
        Err(cause) => Err(from_cause(client, cause.clone())),
    }
}

fn classify(client: &'static str, e: &reqwest::Error) -> TlsSetupError {
    from_cause(client, error_chain(e))
}

fn from_cause(client: &'static str, cause: String) -> TlsSetupError {
    // rustls-platform-verifier's words when the system store is empty: "No CA certificates were
    // loaded from the system".
    if cause.to_ascii_lowercase().contains("ca certificates") {
        TlsSetupError::NoCaCertificates { client, cause }
    } else {
        TlsSetupError::Other { client, cause }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifiers_words_read_as_missing_ca_certificates() {
        let e = from_cause(
            "meshStack",
            "builder error: No CA certificates were loaded from the system".into(),
        );
        let text = e.to_string();
        assert!(
            matches!(e, TlsSetupError::NoCaCertificates { .. }),
            "{text}"
        );
        assert!(text.contains("meshStack"), "{text}");
        assert!(text.contains("ca-certificates"), "{text}");
        assert!(text.contains("SSL_CERT_FILE"), "{text}");
        let e = from_cause("meshStack", "something else".into());
        assert!(matches!(e, TlsSetupError::Other { .. }), "{e}");
    }
}
