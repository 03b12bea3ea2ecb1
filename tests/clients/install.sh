#!/usr/bin/env bash
# Installs what the client-compatibility tests need, into a cache dir outside the repo.
# Idempotent and quick when everything is already there. Debian 12, run as root.
#   STRATA_CLIENTS_CACHE (default ~/.cache/strata-clients)
#     venv/   python venv with psycopg 3, psycopg2, asyncpg, SQLAlchemy, pandas, pg8000, Django (python/requirements.txt)
#     node/   node_modules with pg and postgres (node/package.json)
#     java/   compiled ClientTest.class
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${STRATA_CLIENTS_CACHE:-$HOME/.cache/strata-clients}"
mkdir -p "$CACHE"
installed=()
found=()
apt_updated=0
apt_install() {
  if [[ $apt_updated == 0 ]]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

# ---- python venv ---------------------------------------------------------
PY="${PYTHON:-python3}"
REQ="$HERE/python/requirements.txt"
VENV="$CACHE/venv"
stamp="$VENV/.requirements.txt"
if [[ -x "$VENV/bin/python" ]] && cmp -s "$REQ" "$stamp" \
   && "$VENV/bin/python" -c 'import psycopg, psycopg2, asyncpg, sqlalchemy, pandas, pg8000, django' 2>/dev/null; then
  found+=("python-venv")
else
  # Debian's own python3 keeps venv in a separate package.
  "$PY" -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
  [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
  "$VENV/bin/python" -c 'import psycopg, psycopg2, asyncpg, sqlalchemy, pandas, pg8000, django'
  cp "$REQ" "$stamp"
  installed+=("python-venv(psycopg3,psycopg2,asyncpg,sqlalchemy,pandas,pg8000,django)")
fi

# ---- node-postgres -------------------------------------------------------
NODE_DIR="$CACHE/node"
mkdir -p "$NODE_DIR"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
  installed+=("nodejs")
fi
if cmp -s "$HERE/node/package.json" "$NODE_DIR/package.json" \
   && [[ -f "$NODE_DIR/node_modules/pg/package.json" && -f "$NODE_DIR/node_modules/postgres/package.json" ]]; then
  found+=("node-pg")
else
  cp "$HERE/node/package.json" "$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  installed+=("node-pg")
fi

# ---- java + pgjdbc -------------------------------------------------------
if command -v javac >/dev/null && command -v java >/dev/null; then
  found+=("jdk")
else
  apt_install default-jdk-headless
  installed+=("jdk")
fi
JAR=/usr/share/java/postgresql.jar
if [[ -f "$JAR" ]]; then
  found+=("pgjdbc")
else
  apt_install libpostgresql-jdbc-java
  installed+=("pgjdbc")
fi
if ! command -v psql >/dev/null; then
  apt_install postgresql-client
  installed+=("psql")
else
  found+=("psql")
fi

JAVA_OUT="$CACHE/java"
SRC="$HERE/java/ClientTest.java"
if [[ -f "$JAVA_OUT/ClientTest.class" && "$JAVA_OUT/ClientTest.class" -nt "$SRC" ]]; then
  found+=("ClientTest.class")
else
  mkdir -p "$JAVA_OUT"
  javac -nowarn -d "$JAVA_OUT" -cp "$JAR" "$SRC"
  installed+=("ClientTest.class")
fi

echo "strata-clients ($CACHE): installed: ${installed[*]:-nothing}; found: ${found[*]:-nothing}"
