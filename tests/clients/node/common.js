// What the node client tests share: assertions and the runner that prints ok/FAIL per check and a
// closing `N passed, N failed` line, and exits non-zero when a check failed.
'use strict';

class CheckFailed extends Error {}
function expect(cond, msg) { if (!cond) throw new CheckFailed(msg); }
const eq = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// Runs every check in order; a failure of one of `gates` stops the run (nothing after it can pass).
async function runChecks(label, checks, { gates = ['connect_scram', 'create_namespace_and_table'], cleanup } = {}) {
  const failed = [];
  let passed = 0;
  for (const [name, fn] of Object.entries(checks)) {
    try {
      await fn();
      passed += 1;
      console.log(`  ok   ${label}: ${name}`);
    } catch (e) {
      failed.push(name);
      const detail = e instanceof CheckFailed ? e.message : `${e.name}: ${e.message}${e.code ? ` [SQLSTATE ${e.code}]` : ''}`;
      console.log(`  FAIL ${label}: ${name}: ${detail}`);
      if (gates.includes(name)) break;
    }
  }
  if (cleanup) await cleanup().catch(() => {});
  console.log(`${label}: ${passed} passed, ${failed.length} failed (of ${passed + failed.length})`);
  if (failed.length) { console.log(`${label}: failed checks: ${failed.join(', ')}`); process.exit(1); }
  process.exit(0);
}

module.exports = { CheckFailed, expect, eq, runChecks };
