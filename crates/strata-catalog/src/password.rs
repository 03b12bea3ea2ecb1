//! SCRAM-SHA-256 password verifiers in Postgres' text format
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5802, 7677).
//! Only the verifier is stored: it lets the server check a client's proof but,
//! unlike the password or the salted password, not log in as the client.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;
use strata_common::{Result, StrataError};

/// Postgres' default iteration count.
pub const SCRAM_ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;
/// The most PBKDF2 iterations a stored verifier may ask for. A cleartext
/// login (and every failed one) pays them on the server, so a verifier a user
/// supplies must not be able to pin a thread (Postgres' default is 4096).
pub const MAX_ITERATIONS: u32 = 100_000;

const PREFIX: &str = "SCRAM-SHA-256$";

#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

// Keys are password-derived: keep them out of logs and panic messages.
impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramVerifier {
    /// A verifier for `password` with a fresh random salt.
    pub fn new(password: &str) -> Result<ScramVerifier> {
        let salt = random_bytes(SALT_LEN)?;
        Ok(ScramVerifier::from_password(
            password,
            &salt,
            SCRAM_ITERATIONS,
        ))
    }

    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
        let salted = salted_password(password, salt, iterations);
        ScramVerifier::from_salted(&salted, salt, iterations)
    }

    fn from_salted(salted: &[u8; 32], salt: &[u8], iterations: u32) -> ScramVerifier {
        let client_key = hmac_sha256(salted, b"Client Key");
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(salted, b"Server Key"),
        }
    }

    /// Whether `text` claims to be a verifier (and so must parse as one).
    pub fn looks_like_verifier(text: &str) -> bool {
        text.starts_with(PREFIX)
    }

    /// Parses the text form; None when `text` is not a SCRAM-SHA-256 verifier
    /// or asks for more than [`MAX_ITERATIONS`].
    pub fn parse(text: &str) -> Option<ScramVerifier> {
        let rest = text.strip_prefix(PREFIX)?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|i| (1..=MAX_ITERATIONS).contains(i))?;
        let salt = B64.decode(salt).ok().filter(|s| !s.is_empty())?;
        Some(ScramVerifier {
            iterations,
            salt,
            stored_key: B64.decode(stored).ok()?.try_into().ok()?,
            server_key: B64.decode(server).ok()?.try_into().ok()?,
        })
    }

    pub fn to_text(&self) -> String {
        format!(
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    /// Checks a cleartext password (the opt-in cleartext login) against this
    /// verifier, in constant time.
    pub fn matches_password(&self, password: &str) -> bool {
        let other = ScramVerifier::from_password(password, &self.salt, self.iterations);
        constant_time_eq(&other.stored_key, &self.stored_key)
    }
}

/// Hi(Normalize(password), salt, i): PBKDF2-HMAC-SHA-256. A password that
/// SASLprep rejects is used as it is, as Postgres does.
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let normalized = stringprep::saslprep(password)
        .map(|s| s.into_owned())
        .unwrap_or_else(|_| password.to_string());
    let mut out = [0u8; 32];
    let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        normalized.as_bytes(),
        &mut out,
    );
    out
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    to_array(hmac::sign(&key, msg).as_ref())
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    to_array(digest::digest(&digest::SHA256, data).as_ref())
}

fn to_array(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[..32]);
    out
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| StrataError::internal("the system random number generator failed"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_text_and_checks_passwords() {
        let v = ScramVerifier::new("pencil").unwrap();
        let text = v.to_text();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"));
        let back = ScramVerifier::parse(&text).unwrap();
        assert_eq!(back, v);
        assert!(back.matches_password("pencil"));
        assert!(!back.matches_password("pencil2"));
        assert!(ScramVerifier::parse("md5abc").is_none());
        assert!(ScramVerifier::parse("SCRAM-SHA-256$0:AAAA$AA==:AA==").is_none());
    }

    /// RFC 7677's example user: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==.
    #[test]
    fn rfc7677_keys() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = ScramVerifier::from_password("pencil", &salt, 4096);
        // ServerSignature of the RFC's exchange, recomputed from the derived key.
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        assert_eq!(
            B64.encode(hmac_sha256(&v.server_key, auth.as_bytes())),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }
}
