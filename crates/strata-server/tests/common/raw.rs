//! The Postgres protocol by hand, for tests that must send what no driver
//! would: forged lengths and counts, truncated or random messages. Every read
//! is bounded in time.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One backend message: its type byte and body.
pub type Message = (u8, Vec<u8>);

/// A message with its type byte and length prefix.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// A v3 StartupMessage for `user` on database strata.
pub fn startup(user: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for s in ["user", user, "database", "strata"] {
        cstr(&mut body, s);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

pub fn query(sql: &str) -> Vec<u8> {
    let mut body = vec![];
    cstr(&mut body, sql);
    frame(b'Q', &body)
}

/// Parse of the unnamed statement with the given parameter type oids.
pub fn parse(sql: &str, types: &[u32]) -> Vec<u8> {
    let mut body = vec![];
    cstr(&mut body, "");
    cstr(&mut body, sql);
    body.extend_from_slice(&(types.len() as u16).to_be_bytes());
    for t in types {
        body.extend_from_slice(&t.to_be_bytes());
    }
    frame(b'P', &body)
}

/// Bind of the unnamed portal: every parameter binary (`Some`) or NULL.
pub fn bind_binary(params: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut body = vec![];
    cstr(&mut body, "");
    cstr(&mut body, "");
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&(params.len() as u16).to_be_bytes());
    for p in params {
        match p {
            Some(v) => {
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v);
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    body.extend_from_slice(&0u16.to_be_bytes());
    frame(b'B', &body)
}

pub fn execute() -> Vec<u8> {
    let mut body = vec![];
    cstr(&mut body, "");
    body.extend_from_slice(&0u32.to_be_bytes());
    frame(b'E', &body)
}

pub fn sync() -> Vec<u8> {
    frame(b'S', &[])
}

/// The SQLSTATE of an ErrorResponse body.
pub fn error_code(body: &[u8]) -> Option<String> {
    let mut i = 0;
    while i < body.len() && body[i] != 0 {
        let field = body[i];
        let end = i + 1 + body[i + 1..].iter().position(|b| *b == 0)?;
        if field == b'C' {
            return Some(String::from_utf8_lossy(&body[i + 1..end]).into_owned());
        }
        i = end + 1;
    }
    None
}

pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Connects and logs in as `user` (root logs in without a password from
    /// loopback until it has one), up to the first ReadyForQuery.
    pub async fn login(port: u16, user: &str) -> Result<RawConn, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let mut c = RawConn {
            stream,
            buf: vec![],
        };
        c.send(&startup(user)).await?;
        let msgs = c.until_ready(Duration::from_secs(10)).await?;
        if let Some((_, body)) = msgs.iter().find(|(t, _)| *t == b'E') {
            return Err(format!("login failed: {:?}", error_code(body)));
        }
        Ok(c)
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// The next message, or an error at EOF or after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Message, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if len < 4 {
                    return Err(format!("bad length {len} from the server"));
                }
                if self.buf.len() > len {
                    let tag = self.buf[0];
                    let body = self.buf[5..1 + len].to_vec();
                    self.buf.drain(..1 + len);
                    return Ok((tag, body));
                }
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) => return Err("EOF".into()),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(format!("read: {e}")),
                Err(_) => return Err(format!("no message within {wait:?}")),
            }
        }
    }

    /// Every message up to and including the next ReadyForQuery.
    pub async fn until_ready(&mut self, wait: Duration) -> Result<Vec<Message>, String> {
        let mut out = vec![];
        loop {
            let m = self.next(wait).await?;
            let done = m.0 == b'Z';
            out.push(m);
            if done {
                return Ok(out);
            }
        }
    }

    /// Sends `bytes`, then reads to ReadyForQuery; the SQLSTATE of the first
    /// ErrorResponse, if any.
    pub async fn roundtrip(&mut self, bytes: &[u8]) -> Result<Option<String>, String> {
        self.send(bytes).await?;
        let msgs = self.until_ready(Duration::from_secs(30)).await?;
        Ok(msgs
            .iter()
            .find(|(t, _)| *t == b'E')
            .and_then(|(_, b)| error_code(b)))
    }
}
