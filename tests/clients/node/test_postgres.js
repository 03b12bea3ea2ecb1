// Postgres.js ("postgres", porsager) client-compatibility test (see ../README.md). Exit 0 when every
// check passes. postgres.js prepares every query as a named statement with typed parameters (it
// Describes first, then binds by the server's types), uses binary-free text results, runs
// sql.begin() blocks and their savepoints, and sql.cursor() (Execute with a row limit).
'use strict';
const postgres = require('postgres');

const NS = process.env.STRATA_NS || 'clients_node_postgres';
if (!/^[a-z_][a-z0-9_]*$/.test(NS)) { console.error(`STRATA_NS must be a lower-case identifier: ${NS}`); process.exit(2); }
const DIALECT = process.env.STRATA_DIALECT;
const sql = postgres({
  host: process.env.PGHOST || '127.0.0.1',
  port: Number(process.env.PGPORT || 5432),
  user: process.env.PGUSER || 'root',
  password: process.env.PGPASSWORD || '',
  database: process.env.PGDATABASE || 'strata',
  connect_timeout: 10,
  max: 2,
  onnotice: () => {},
});

const { expect, eq, runChecks } = require('./common');
const T = `${NS}.notes`;

const checks = {
  async connect_scram() {
    // (Not `41 + 1`: Strata types integer literals as bigint, which postgres.js returns as a string.)
    const [r] = await sql`SELECT CAST(42 AS INT) AS v`;
    expect(r.v === 42, `SELECT CAST(42 AS INT) gave ${JSON.stringify(r)}`);
  },
  async create_namespace_and_table() {
    const drop = DIALECT === 'strata' ? `DROP NAMESPACE IF EXISTS ${NS} CASCADE` : `DROP SCHEMA IF EXISTS ${NS} CASCADE`;
    const create = DIALECT === 'strata' ? `CREATE NAMESPACE ${NS}` : `CREATE SCHEMA ${NS}`;
    await sql.unsafe(drop);
    await sql.unsafe(create);
    await sql.unsafe(`CREATE TABLE ${T} (id BIGINT PRIMARY KEY, body TEXT NOT NULL, tags TEXT[], meta JSONB)`);
  },
  async typed_params_and_results() {
    await sql`INSERT INTO ${sql(NS)}.notes (id, body, tags, meta) VALUES (${1}, ${'hello'}, ${['a', 'b']}, ${sql.json({ k: 1 })})`;
    const rows = await sql`SELECT id, body, tags, meta FROM ${sql(NS)}.notes WHERE id = ${1}`;
    expect(rows.length === 1, `${rows.length} rows`);
    const r = rows[0];
    expect(String(r.id) === '1' && r.body === 'hello' && eq(r.tags, ['a', 'b']) && eq(r.meta, { k: 1 }),
      `row ${JSON.stringify(r)}`);
  },
  async dynamic_insert_helper() {
    const items = [2, 3, 4].map((id) => ({ id, body: `n${id}` }));
    await sql`INSERT INTO ${sql(NS)}.notes ${sql(items, 'id', 'body')}`;
    const [{ n }] = await sql`SELECT count(*)::int AS n FROM ${sql(NS)}.notes WHERE id IN ${sql([2, 3, 4])}`;
    expect(n === 3, `count ${n}`);
  },
  async begin_commit_and_savepoint() {
    await sql.begin(async (tx) => {
      await tx`INSERT INTO ${sql(NS)}.notes (id, body) VALUES (${10}, ${'outer'})`;
      await tx.savepoint(async (sp) => {
        await sp`INSERT INTO ${sql(NS)}.notes (id, body) VALUES (${11}, ${'kept'})`;
      });
      await tx.savepoint(async (sp) => {
        await sp`INSERT INTO ${sql(NS)}.notes (id, body) VALUES (${12}, ${'undone'})`;
        throw new Error('roll back this savepoint');
      }).catch(() => {});
    });
    const ids = (await sql`SELECT id FROM ${sql(NS)}.notes WHERE id >= 10 ORDER BY id`).map((r) => Number(r.id));
    expect(eq(ids, [10, 11]), `after the block ${JSON.stringify(ids)}`);
  },
  async rollback_on_error() {
    const err = await sql.begin(async (tx) => {
      await tx`INSERT INTO ${sql(NS)}.notes (id, body) VALUES (${20}, ${'x'})`;
      await tx`INSERT INTO ${sql(NS)}.notes (id, body) VALUES (${1}, ${'duplicate'})`;
    }).catch((e) => e);
    expect(err && err.code === '23505', `expected 23505, got ${err && err.code}`);
    const rows = await sql`SELECT id FROM ${sql(NS)}.notes WHERE id = ${20}`;
    expect(rows.length === 0, 'row of a rolled-back block is visible');
  },
  async cursor_in_chunks() {
    let n = 0;
    let chunks = 0;
    await sql.begin(async (tx) => {
      for await (const rows of tx`SELECT x FROM generate_series(1, 100) AS g(x)`.cursor(30)) {
        chunks += 1;
        n += rows.length;
      }
    });
    expect(n === 100 && chunks === 4, `${n} rows in ${chunks} chunks`);
  },
  async error_sqlstates() {
    const e1 = await sql`SELECT * FROM ${sql(NS)}.no_such_table`.catch((e) => e);
    expect(e1.code === '42P01', `undefined table: ${e1.code}`);
    const e2 = await sql.unsafe('SELEC 1').catch((e) => e);
    expect(e2.code === '42601', `syntax: ${e2.code}`);
  },
};

runChecks('node-postgres', checks, { cleanup: () => sql.end({ timeout: 5 }) });
