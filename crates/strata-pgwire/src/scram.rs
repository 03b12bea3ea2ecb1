//! The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel
//! binding, checking the client's proof against a stored verifier. pgwire's
//! own SCRAM support wants the salted password, which is as good as the
//! password itself, so Strata keeps only verifiers and runs the exchange here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use strata_catalog::password::{
    SCRAM_ITERATIONS, ScramVerifier, constant_time_eq, hmac_sha256, random_bytes, sha256,
};
use strata_common::StrataError;

pub const MECHANISM: &str = "SCRAM-SHA-256";

#[derive(Debug)]
pub enum ScramError {
    /// The client broke the protocol (08P01).
    Protocol(String),
    /// The proof did not match, or the user cannot log in (28P01).
    Failed,
}

fn protocol(msg: &str) -> ScramError {
    ScramError::Protocol(msg.to_string())
}

/// A fresh server nonce: printable, no commas.
pub fn server_nonce() -> Result<String, StrataError> {
    Ok(B64.encode(random_bytes(18)?))
}

/// A verifier for a user that does not exist or has no password. Its salt is
/// derived from a server secret and the name, so asking twice gives the same
/// salt, as for a real user; no password matches it.
pub fn mock_verifier(secret: &[u8], user: &str) -> ScramVerifier {
    let salt = hmac_sha256(secret, format!("salt\0{user}").as_bytes());
    ScramVerifier {
        iterations: SCRAM_ITERATIONS,
        salt: salt[..16].to_vec(),
        stored_key: hmac_sha256(secret, format!("stored\0{user}").as_bytes()),
        server_key: hmac_sha256(secret, format!("server\0{user}").as_bytes()),
    }
}

/// An exchange after the server-first message, waiting for the client-final.
pub struct ScramPending {
    verifier: ScramVerifier,
    mock: bool,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl std::fmt::Debug for ScramPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramPending").finish_non_exhaustive()
    }
}

/// Reads the client-first message and builds the server-first reply. `mock`
/// runs the whole exchange and fails it at the end, so a client cannot tell an
/// unknown user from a wrong password.
pub fn client_first(
    data: &[u8],
    verifier: ScramVerifier,
    mock: bool,
    server_nonce: &str,
) -> Result<ScramPending, ScramError> {
    let text = std::str::from_utf8(data).map_err(|_| protocol("SCRAM message is not UTF-8"))?;
    let mut parts = text.splitn(3, ',');
    let cbind = parts.next().unwrap_or_default();
    let authzid = parts
        .next()
        .ok_or_else(|| protocol("malformed SCRAM message"))?;
    let bare = parts
        .next()
        .ok_or_else(|| protocol("malformed SCRAM message"))?;
    match cbind {
        "n" | "y" => {}
        c if c.starts_with("p=") => {
            return Err(protocol(
                "channel binding is not supported: use SCRAM-SHA-256 without channel binding",
            ));
        }
        _ => return Err(protocol("malformed SCRAM message (gs2 header)")),
    }
    if !authzid.is_empty() {
        return Err(protocol("authorization identities are not supported"));
    }
    let mut client_nonce = None;
    for (i, attr) in bare.split(',').enumerate() {
        match (i, attr.split_once('=')) {
            (0, Some(("m", _))) => {
                return Err(protocol("SCRAM extensions are not supported"));
            }
            // The name in the message is ignored: the startup packet's counts.
            (0, Some(("n", _))) => {}
            (1, Some(("r", nonce))) => client_nonce = Some(nonce),
            (0 | 1, _) => return Err(protocol("malformed SCRAM client-first message")),
            _ => {}
        }
    }
    let client_nonce = client_nonce
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .ok_or_else(|| protocol("malformed SCRAM nonce"))?;
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&verifier.salt),
        verifier.iterations
    );
    Ok(ScramPending {
        verifier,
        mock,
        gs2_header: format!("{cbind},,"),
        client_first_bare: bare.to_string(),
        server_first,
        nonce,
    })
}

impl ScramPending {
    pub fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Checks the client-final message's proof; returns the server-final
    /// message (`v=ServerSignature`) on success.
    pub fn client_final(self, data: &[u8]) -> Result<String, ScramError> {
        let text = std::str::from_utf8(data).map_err(|_| protocol("SCRAM message is not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| protocol("SCRAM client-final message has no proof"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .and_then(|c| B64.decode(c).ok())
            .ok_or_else(|| protocol("malformed SCRAM channel binding"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(protocol("SCRAM channel binding does not match"));
        }
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| protocol("malformed SCRAM client-final message"))?;
        if nonce != self.nonce {
            return Err(protocol("SCRAM nonce does not match"));
        }
        let proof = B64
            .decode(proof)
            .ok()
            .filter(|p| p.len() == 32)
            .ok_or_else(|| protocol("malformed SCRAM proof"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = hmac_sha256(&self.verifier.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let matches = constant_time_eq(&sha256(&client_key), &self.verifier.stored_key);
        if self.mock || !matches {
            return Err(ScramError::Failed);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

    fn pencil() -> ScramVerifier {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramVerifier::from_password("pencil", &salt, 4096)
    }

    /// The example exchange of RFC 7677, section 3.
    #[test]
    fn rfc7677_exchange() {
        let pending = client_first(CLIENT_FIRST.as_bytes(), pencil(), false, SERVER_NONCE).unwrap();
        assert_eq!(
            pending.server_first(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        assert_eq!(
            pending.client_final(CLIENT_FINAL.as_bytes()).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn wrong_password_and_mock_fail() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let other = ScramVerifier::from_password("pencil2", &salt, 4096);
        let pending = client_first(CLIENT_FIRST.as_bytes(), other, false, SERVER_NONCE).unwrap();
        assert!(matches!(
            pending.client_final(CLIENT_FINAL.as_bytes()),
            Err(ScramError::Failed)
        ));
        let pending = client_first(CLIENT_FIRST.as_bytes(), pencil(), true, SERVER_NONCE).unwrap();
        assert!(matches!(
            pending.client_final(CLIENT_FINAL.as_bytes()),
            Err(ScramError::Failed)
        ));
    }

    #[test]
    fn mock_salt_is_stable_per_user() {
        let a = mock_verifier(b"secret", "ghost");
        assert_eq!(a.salt, mock_verifier(b"secret", "ghost").salt);
        assert_ne!(a.salt, mock_verifier(b"secret", "other").salt);
        assert_eq!(a.salt.len(), 16);
    }

    #[test]
    fn protocol_errors() {
        let first = |m: &str| client_first(m.as_bytes(), pencil(), false, SERVER_NONCE);
        assert!(matches!(
            first("p=tls-server-end-point,,n=,r=abc"),
            Err(ScramError::Protocol(_))
        ));
        assert!(matches!(
            first("n,a=bob,n=,r=abc"),
            Err(ScramError::Protocol(_))
        ));
        assert!(matches!(
            first("n,,m=x,n=,r=abc"),
            Err(ScramError::Protocol(_))
        ));
        assert!(matches!(first("n,,n=,r="), Err(ScramError::Protocol(_))));
        assert!(matches!(first("garbage"), Err(ScramError::Protocol(_))));
        assert!(first("y,,n=,r=abc").is_ok());
        // A client-final whose nonce or binding differs is refused.
        let pending = first(CLIENT_FIRST).unwrap();
        let bad = CLIENT_FINAL.replace("c=biws", "c=eSws");
        assert!(matches!(
            pending.client_final(bad.as_bytes()),
            Err(ScramError::Protocol(_))
        ));
        let pending = first(CLIENT_FIRST).unwrap();
        assert!(matches!(
            pending.client_final(b"c=biws,r=x,p=AAAA"),
            Err(ScramError::Protocol(_))
        ));
    }
}
