//! Bounded-time fuzzing of the real server: random and mutated protocol
//! messages (before and after login) and random SQL (deep nesting, huge
//! placeholders, odd literals, random binary parameters). Whatever comes back,
//! the server must not abort, must not hang, and must answer a fresh
//! connection afterwards.
//!
//! The run is deterministic for a seed: `STRATA_FUZZ_SEED` picks it (the seed
//! of a failing run is printed), `STRATA_FUZZ_SECS` how long each fuzzer runs
//! (CI's default is short; raise it for a long soak).

mod common;

use common::TestServer;
use common::raw::{self, RawConn};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// xorshift64*: small, deterministic, good enough to pick inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Up to `max` random bytes.
    fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

fn seed() -> u64 {
    std::env::var("STRATA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        })
}

fn budget() -> Duration {
    let secs = std::env::var("STRATA_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    Duration::from_secs(secs)
}

async fn assert_serves(server: &mut TestServer, seed: u64) {
    assert!(
        server.is_running(),
        "seed {seed}: the server exited\n{}",
        server.log_tail()
    );
    let c = match tokio::time::timeout(Duration::from_secs(20), server.try_client()).await {
        Ok(Ok(c)) => c,
        other => panic!(
            "seed {seed}: no fresh connection afterwards ({:?})\n{}",
            other.map(|r| r.err()),
            server.log_tail()
        ),
    };
    let v: i64 = tokio::time::timeout(Duration::from_secs(20), c.query_one("SELECT 1 + 1", &[]))
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: the server hangs"))
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
        .get(0);
    assert_eq!(v, 2);
}

/// A frontend message: a known type with a random, truncated, oversized or
/// mutated body, or a valid message with a few bytes flipped.
fn random_message(rng: &mut Rng) -> Vec<u8> {
    const TAGS: &[u8] = b"QPBEDCSHFfdcXp\0z";
    let valid: Vec<u8> = match rng.below(6) {
        0 => raw::query(random_sql(rng, 3).as_str()),
        1 => raw::parse(&random_sql(rng, 3), &[rng.next() as u32, 23, 1007]),
        2 => raw::bind_binary(&[Some(rng.some_bytes(64)), None]),
        3 => raw::execute(),
        4 => raw::sync(),
        _ => raw::frame(b'd', &rng.some_bytes(256)),
    };
    match rng.below(4) {
        // Valid as it is.
        0 => valid,
        // A few bytes flipped (lengths and counts included).
        1 => {
            let mut m = valid;
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
            m
        }
        // A length that lies: far larger, or shorter than the body.
        2 => {
            let mut m = vec![*rng.pick(TAGS)];
            let claimed: u32 = match rng.below(3) {
                0 => rng.next() as u32,
                1 => 0x7fff_ffff,
                _ => rng.below(8) as u32,
            };
            m.extend_from_slice(&claimed.to_be_bytes());
            m.extend(rng.some_bytes(64));
            m
        }
        // Random body for a known type.
        _ => {
            let tag = *rng.pick(TAGS);
            raw::frame(tag, &rng.some_bytes(512))
        }
    }
}

#[tokio::test]
async fn protocol_fuzz_never_takes_the_server_down() {
    let seed = seed();
    println!("protocol fuzz seed {seed}");
    let mut rng = Rng::new(seed);
    let mut server = TestServer::start().await;
    let port = server.port();
    let until = Instant::now() + budget();
    let mut rounds = 0;
    while Instant::now() < until {
        rounds += 1;
        if rng.chance(4) {
            // Before login: a startup packet with random lengths and fields.
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let mut pkt = if rng.chance(2) {
                raw::startup(if rng.chance(2) { "root" } else { "nobody" })
            } else {
                {
                    let n = 8 + rng.below(64);
                    rng.bytes(n)
                }
            };
            let i = rng.below(pkt.len());
            pkt[i] ^= rng.next() as u8;
            let _ = s.write_all(&pkt).await;
            let _ = tokio::time::timeout(Duration::from_millis(50), async {
                use tokio::io::AsyncReadExt;
                let mut b = [0u8; 256];
                let _ = s.read(&mut b).await;
            })
            .await;
            continue;
        }
        let Ok(mut conn) = RawConn::login(port, "root").await else {
            panic!("seed {seed}: login failed\n{}", server.log_tail());
        };
        for _ in 0..1 + rng.below(8) {
            let m = random_message(&mut rng);
            if conn.send(&m).await.is_err() {
                break;
            }
        }
        if rng.chance(2) {
            let _ = conn.send(&raw::sync()).await;
        }
        // Read whatever comes, briefly; the server may also close on us.
        while conn.next(Duration::from_millis(30)).await.is_ok() {}
        if rounds % 25 == 0 {
            assert_serves(&mut server, seed).await;
        }
    }
    println!("protocol fuzz: {rounds} rounds");
    assert_serves(&mut server, seed).await;
}

/// A random SQL expression of at most `depth` levels.
fn random_expr(rng: &mut Rng, depth: usize) -> String {
    const LITERALS: &[&str] = &[
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "1e308",
        "'NaN'::double precision",
        "'Infinity'::float8",
        "'-Infinity'::float8",
        "-0.0",
        "NULL",
        "''",
        "'x'",
        "'{1,2,NULL}'::int[]",
        "'2024-02-30'",
        "TRUE",
        "12345678901234567890123456789",
        "'\\\\x00'",
        "id",
        "v",
        "f",
    ];
    if depth == 0 || rng.chance(4) {
        return match rng.below(10) {
            0 => format!("${}", 1 + rng.below(3)),
            1 => format!("${}", rng.next() % 100_000_000_000),
            _ => rng.pick(LITERALS).to_string(),
        };
    }
    let a = random_expr(rng, depth - 1);
    let b = random_expr(rng, depth - 1);
    match rng.below(12) {
        0 => format!("({a} + {b})"),
        1 => format!("({a} * {b})"),
        2 => format!("({a} / {b})"),
        3 => format!("({a} || {b})"),
        4 => format!("({a} = {b})"),
        5 => format!(
            "CAST({a} AS {})",
            rng.pick(&[
                "bigint",
                "text",
                "double precision",
                "int[]",
                "date",
                "numeric(5,2)",
                "boolean",
                "bytea"
            ])
        ),
        6 => format!(
            "{}({a})",
            rng.pick(&[
                "abs",
                "length",
                "upper",
                "sqrt",
                "ln",
                "cardinality",
                "array_length",
                "coalesce",
                "md5",
                "exp"
            ])
        ),
        7 => format!("CASE WHEN {a} THEN {b} ELSE NULL END"),
        8 => format!("({a} IS NULL)"),
        9 => format!("ARRAY[{a}, {b}]"),
        10 => format!("(SELECT {a})"),
        _ => {
            // A long chain: the shape that used to overflow the stack.
            let n = rng.below(300);
            format!("(1{})", "+1".repeat(n))
        }
    }
}

fn random_sql(rng: &mut Rng, depth: usize) -> String {
    let e = random_expr(rng, depth);
    match rng.below(8) {
        0 => format!("SELECT {e}"),
        1 => format!("SELECT {e} FROM f WHERE {}", random_expr(rng, 2)),
        2 => format!(
            "INSERT INTO f (id, v, f) VALUES ({}, {e}, {})",
            rng.below(50),
            random_expr(rng, 1)
        ),
        3 => format!("UPDATE f SET v = {e} WHERE id = {}", rng.below(50)),
        4 => format!("DELETE FROM f WHERE {e}"),
        5 => format!("SELECT count(*), max({e}) FROM f GROUP BY id % 3 ORDER BY 1"),
        6 => format!("PREPARE p{} AS SELECT {e}", rng.below(5)),
        _ => format!("EXECUTE p{}({e})", rng.below(5)),
    }
}

#[tokio::test]
async fn sql_fuzz_never_takes_the_server_down() {
    let seed = seed();
    println!("sql fuzz seed {seed}");
    let mut rng = Rng::new(seed);
    let mut server = TestServer::start().await;
    let setup = server.client().await;
    setup
        .batch_execute(
            "CREATE TABLE f (id BIGINT PRIMARY KEY, v TEXT, f DOUBLE);
             INSERT INTO f VALUES (1, 'a', 1.5), (2, NULL, 'NaN'), (3, '', '-Infinity')",
        )
        .await
        .unwrap();
    let until = Instant::now() + budget();
    let mut statements = 0;
    let mut client = server.client().await;
    while Instant::now() < until {
        statements += 1;
        let depth = 1 + rng.below(6);
        let sql = random_sql(&mut rng, depth);
        let run = async {
            if rng.chance(2) {
                client.batch_execute(&sql).await.map(|_| ())
            } else {
                match client.prepare(&sql).await {
                    Ok(st) => {
                        // Random binary parameters of the types the server inferred.
                        let n = st.params().len().min(3);
                        let params: Vec<Option<i64>> =
                            (0..n).map(|_| Some(rng.next() as i64)).collect();
                        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                            params.iter().map(|p| p as _).collect();
                        client.query(&st, &refs).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(30), run).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_closed() => {
                assert_serves(&mut server, seed).await;
                client = server.client().await;
            }
            Ok(Err(_)) => {}
            Err(_) => panic!("seed {seed}: statement hangs: {sql}"),
        }
        if statements % 50 == 0 {
            assert_serves(&mut server, seed).await;
        }
    }
    println!("sql fuzz: {statements} statements");
    assert_serves(&mut server, seed).await;
}
