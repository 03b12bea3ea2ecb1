#!/usr/bin/env bash
# Sourced by the other scripts: reuse a build directory outside the checkout when
# one exists (a fresh clone then skips the ~26 min dependency build); otherwise
# build in ./target as usual.
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d "${HOME:-/root}/.cache/strata-target" ]; then
  export CARGO_TARGET_DIR="${HOME:-/root}/.cache/strata-target"
fi
