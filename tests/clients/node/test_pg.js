// node-postgres (pg) client-compatibility test (see ../README.md). Exit 0 when every check passes.
// pg uses the extended protocol for parameterised queries with text-format parameters (type OID 0,
// the server infers types) and text-format results; `name:` makes it a named prepared statement.
'use strict';
const { Client, types } = require('pg');

const NS = process.env.STRATA_NS || 'clients_node';
if (!/^[a-z_][a-z0-9_]*$/.test(NS)) { console.error(`STRATA_NS must be a lower-case identifier: ${NS}`); process.exit(2); }
const T = `${NS}.types`;
const CFG = {
  host: process.env.PGHOST || '127.0.0.1',
  port: Number(process.env.PGPORT || 5432),
  user: process.env.PGUSER || 'root',
  password: process.env.PGPASSWORD || '',
  database: process.env.PGDATABASE || 'strata',
  connectionTimeoutMillis: 10000,
};
const DIALECT = process.env.STRATA_DIALECT;

// Keep date/time values as the server's text, so they are compared exactly (no JS Date rounding).
for (const oid of [1082, 1083, 1114, 1184]) types.setTypeParser(oid, (v) => v);
types.setTypeParser(1182, (v) => v); // _date
types.setTypeParser(1115, (v) => v); // _timestamp
types.setTypeParser(1185, (v) => v); // _timestamptz

const { expect, eq, runChecks } = require('./common');

async function connect() { const c = new Client(CFG); await c.connect(); return c; }

async function sqlstateOf(p) {
  try { await p; } catch (e) { return [e.code, e.message]; }
  return [null, 'no error'];
}
async function expectSqlstate(want, p) {
  const [got, msg] = await sqlstateOf(p);
  expect(got === want, `expected SQLSTATE ${want}, got ${got}: ${msg}`);
}

// Columns: [name, SQL type]. Values: what is sent (text params) and what is expected back.
const COLUMNS = [
  ['id', 'BIGINT PRIMARY KEY'], ['b', 'BOOLEAN'], ['i2', 'SMALLINT'], ['i4', 'INTEGER'], ['i8', 'BIGINT'],
  ['f4', 'REAL'], ['f8', 'DOUBLE PRECISION'], ['num', 'NUMERIC(20,6)'], ['txt', 'TEXT'], ['vc', 'VARCHAR(20)'],
  ['bin', 'BYTEA'], ['d', 'DATE'], ['tm', 'TIME'], ['ts', 'TIMESTAMP'], ['tstz', 'TIMESTAMPTZ'], ['u', 'UUID'],
  ['j', 'JSON'], ['jb', 'JSONB'], ['ai', 'INT[]'], ['ai8', 'BIGINT[]'], ['af8', 'DOUBLE PRECISION[]'],
  ['ab', 'BOOLEAN[]'], ['at', 'TEXT[]'],
];
const NAMES = COLUMNS.map((c) => c[0]);
const DATA = NAMES.slice(1);

// [param value, expected value read back]. pg returns int8 and numeric as strings, bytea as Buffer,
// json as parsed objects, arrays as JS arrays (int8[] elements as strings).
const ROW_FULL = {
  b: [true, true], i2: [12345, 12345], i4: [-123456789, -123456789],
  i8: ['9007199254740993', '9007199254740993'], f4: [1.5, 1.5], f8: [3.141592653589793, 3.141592653589793],
  num: ['12345678901234.123456', '12345678901234.123456'], txt: ['héllo wörld ✓', 'héllo wörld ✓'],
  vc: ['varchar', 'varchar'], bin: [Buffer.from('0001deadbeefff', 'hex'), Buffer.from('0001deadbeefff', 'hex')],
  d: ['2024-02-29', '2024-02-29'], tm: ['13:45:56.123456', '13:45:56.123456'],
  ts: ['2024-02-29 13:45:56.123456', '2024-02-29 13:45:56.123456'],
  tstz: ['2024-02-29 13:45:56.123456+00', '2024-02-29T13:45:56.123456Z'],
  u: ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'],
  j: [JSON.stringify({ a: 1, b: [1, 2] }), { a: 1, b: [1, 2] }],
  jb: [JSON.stringify({ k: 'v', n: null }), { k: 'v', n: null }],
  ai: [[1, 2, null], [1, 2, null]], ai8: [['9007199254740993', '-1'], ['9007199254740993', '-1']],
  af8: [[1.5, -2.25], [1.5, -2.25]], ab: [[true, false], [true, false]], at: [['a', 'b c', ''], ['a', 'b c', '']],
};
const ROW_NULL = Object.fromEntries(DATA.map((c) => [c, [null, null]]));
const ROW_EDGE = {
  b: [false, false], i2: [-32768, -32768], i4: [2147483647, 2147483647],
  i8: ['-9223372036854775808', '-9223372036854775808'], f4: [-0.25, -0.25], f8: [1e300, 1e300],
  num: ['-0.000001', '-0.000001'], txt: ['', ''], vc: ['x'.repeat(20), 'x'.repeat(20)],
  bin: [Buffer.alloc(0), Buffer.alloc(0)], d: ['1970-01-01', '1970-01-01'], tm: ['00:00:00', '00:00:00'],
  ts: ['1999-12-31 23:59:59.999999', '1999-12-31 23:59:59.999999'],
  tstz: ['2000-01-01 00:00:00.000001+00', '2000-01-01T00:00:00.000001Z'],
  u: ['00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000000'],
  j: ['[]', []], jb: [JSON.stringify({ nested: { x: [true, false] } }), { nested: { x: [true, false] } }],
  ai: [[], []], ai8: [[null], [null]], af8: [[], []], ab: [[null, true], [null, true]],
  at: [['x"y', 'back\\slash', 'NULL', ' sp ', null, '{}', 'a,b'], ['x"y', 'back\\slash', 'NULL', ' sp ', null, '{}', 'a,b']],
};
const ROWS = { 1: ROW_FULL, 2: ROW_NULL, 3: ROW_EDGE };

// Timestamptz text from the server (any offset) -> canonical UTC ISO string with microseconds.
function tstzToUtc(s) {
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(s)) return s; // already canonical
  const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d)(?::?(\d\d))?(?::?(\d\d))?$/.exec(s);
  if (!m) return `unparsable timestamptz ${JSON.stringify(s)}`;
  const frac = (m[3] || '.').slice(1).padEnd(6, '0');
  const sign = m[4][0] === '-' ? -1 : 1;
  const offMin = sign * (Math.abs(Number(m[4])) * 60 + Number(m[5] || 0));
  const ms = Date.parse(`${m[1]}T${m[2]}Z`) - offMin * 60000;
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, `.${frac}Z`);
}
function norm(col, v) {
  if (v === null || v === undefined) return null;
  if (col === 'tstz') return tstzToUtc(v);
  if (col === 'bin') return Buffer.isBuffer(v) ? v.toString('hex') : `not a Buffer: ${JSON.stringify(v)}`;
  return v;
}
function compareRow(id, exp, got) {
  const bad = [];
  for (const c of DATA) {
    const e = norm(c, exp[c][1]);
    const g = norm(c, got[c]);
    if (!eq(e, g)) bad.push(`id=${id} ${c}: expected ${JSON.stringify(e)}, got ${JSON.stringify(g)}`);
  }
  return bad;
}

const INSERT = `INSERT INTO ${T} (${NAMES.join(', ')}) VALUES (${NAMES.map((_, i) => `$${i + 1}`).join(', ')})`;
let admin;

// Plain rows the transaction/error checks own, so they do not depend on the INSERT checks.
async function seed(ids) {
  for (const i of ids) await admin.query(`INSERT INTO ${T} (id, txt) VALUES (${i}, 'seed') ON CONFLICT (id) DO NOTHING`);
}

async function idsPresent(ids) {
  const r = await admin.query(`SELECT id FROM ${T} WHERE id IN (${ids.join(', ')}) ORDER BY id`);
  return r.rows.map((x) => Number(x.id));
}

const checks = {
  async connect_scram() {
    admin = await connect();
    const r = await admin.query('SELECT 1 + 1 AS v');
    expect(Number(r.rows[0].v) === 2, `SELECT 1 + 1 gave ${JSON.stringify(r.rows[0])}`);
  },
  async login_wrong_password_refused_28P01() {
    const c = new Client({ ...CFG, password: `${CFG.password}-wrong` });
    const [code, msg] = await sqlstateOf(c.connect());
    await c.end().catch(() => {});
    expect(code === '28P01', `expected 28P01, got ${code}: ${msg}`);
  },
  async create_namespace_and_table() {
    await admin.query(DIALECT === 'strata' ? `DROP NAMESPACE IF EXISTS ${NS} CASCADE` : `DROP SCHEMA IF EXISTS ${NS} CASCADE`);
    await admin.query(DIALECT === 'strata' ? `CREATE NAMESPACE ${NS}` : `CREATE SCHEMA ${NS}`);
    await admin.query(`CREATE TABLE ${T} (${COLUMNS.map((c) => `${c[0]} ${c[1]}`).join(', ')})`);
  },
  async insert_text_params_prepared() {
    const c = await connect();
    try {
      for (const [id, row] of Object.entries(ROWS)) {
        await c.query({ name: 'ins_all', text: INSERT, values: [id, ...DATA.map((k) => row[k][0])] });
      }
    } finally { await c.end(); }
  },
  async select_text_results() {
    const r = await admin.query(`SELECT ${NAMES.join(', ')} FROM ${T} WHERE id IN (1, 2, 3) ORDER BY id`);
    const ids = r.rows.map((x) => Number(x.id));
    expect(eq(ids, [1, 2, 3]), `expected ids [1,2,3], got ${JSON.stringify(ids)}`);
    const bad = r.rows.flatMap((row) => compareRow(row.id, ROWS[row.id], row));
    expect(bad.length === 0, bad.join('; '));
  },
  async select_by_pk_param() {
    const r = await admin.query({ name: 'sel_pk', text: `SELECT ${NAMES.join(', ')} FROM ${T} WHERE id = $1`, values: [1] });
    expect(r.rows.length === 1, `id = $1 gave ${r.rows.length} rows`);
    const bad = compareRow(1, ROW_FULL, r.rows[0]);
    expect(bad.length === 0, bad.join('; '));
  },
  async per_type_text_params_text_results() {
    const bad = [];
    for (const [ci, col] of DATA.entries()) {
      for (const [k, row] of [ROW_FULL, ROW_EDGE].entries()) {
        const id = 4000 + ci * 10 + k;
        let got;
        try {
          await admin.query(`INSERT INTO ${T} (id, ${col}) VALUES ($1, $2)`, [id, row[col][0]]);
          got = await admin.query(`SELECT ${col} FROM ${T} WHERE id = ${id}`);
        } catch (e) { bad.push(`${col}=${JSON.stringify(row[col][0])}: [${e.code}] ${e.message}`); continue; }
        if (got.rows.length !== 1) { bad.push(`${col}: row ${id} not found after INSERT`); continue; }
        const e = norm(col, row[col][1]);
        const g = norm(col, got.rows[0][col]);
        if (!eq(e, g)) bad.push(`${col}: expected ${JSON.stringify(e)}, got ${JSON.stringify(g)}`);
      }
    }
    expect(bad.length === 0, `${bad.length} type(s) failed: ${bad.join(' | ')}`);
  },
  async txn_commit() {
    const c = await connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO ${T} (id, txt) VALUES ($1, $2)`, [100, 'tx-a']);
      await c.query(`INSERT INTO ${T} (id, txt) VALUES ($1, $2)`, [101, 'tx-b']);
      const n = await c.query(`SELECT count(*) AS n FROM ${T} WHERE id IN (100, 101)`);
      expect(Number(n.rows[0].n) === 2, `own uncommitted rows: expected 2, got ${n.rows[0].n}`);
      const seen = await idsPresent([100, 101]);
      expect(eq(seen, []), `uncommitted rows visible to another session: ${JSON.stringify(seen)}`);
      await c.query('COMMIT');
    } finally { await c.end(); }
    const seen = await idsPresent([100, 101]);
    expect(eq(seen, [100, 101]), `after COMMIT expected [100,101], got ${JSON.stringify(seen)}`);
  },
  async txn_rollback() {
    await seed([200, 201]);
    const c = await connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO ${T} (id, txt) VALUES ($1, $2)`, [110, 'rb-a']);
      await c.query(`UPDATE ${T} SET txt = 'changed' WHERE id = 200`);
      await c.query(`DELETE FROM ${T} WHERE id = 201`);
      await c.query('ROLLBACK');
    } finally { await c.end(); }
    const seen = await idsPresent([110, 200, 201]);
    expect(eq(seen, [200, 201]), `after ROLLBACK expected [200,201] (110 absent, 201 not deleted), got ${JSON.stringify(seen)}`);
    const r = await admin.query(`SELECT txt FROM ${T} WHERE id = 200`);
    expect(r.rows[0].txt === 'seed', `after ROLLBACK the UPDATE is visible: ${JSON.stringify(r.rows[0])}`);
  },
  async txn_error_aborts_block_25P02() {
    await seed([200]);
    const c = await connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO ${T} (id, txt) VALUES ($1, $2)`, [120, 'ab-a']);
      await expectSqlstate('23505', c.query(`INSERT INTO ${T} (id) VALUES ($1)`, [200]));
      await expectSqlstate('25P02', c.query('SELECT 1'));
      await c.query('ROLLBACK');
      const r = await c.query('SELECT 7 AS v');
      expect(Number(r.rows[0].v) === 7, 'connection not usable after ROLLBACK');
    } finally { await c.end(); }
    expect(eq(await idsPresent([120]), []), 'row of an aborted transaction is visible');
  },
  async error_23505_unique_violation() {
    await seed([200]);
    await expectSqlstate('23505', admin.query(`INSERT INTO ${T} (id) VALUES ($1)`, [200]));
  },
  async error_42P01_undefined_table() { await expectSqlstate('42P01', admin.query(`SELECT * FROM ${NS}.no_such_table`)); },
  async error_42601_syntax() { await expectSqlstate('42601', admin.query('SELEC 1')); },
  async error_42601_syntax_extended() { await expectSqlstate('42601', admin.query('SELEC $1', [1])); },
};

runChecks('node-pg', checks, { cleanup: async () => { if (admin) await admin.end(); } });
