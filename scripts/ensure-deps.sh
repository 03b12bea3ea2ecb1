#!/usr/bin/env bash
# Installs what building and testing Strata needs from the OS, only when missing:
#  - libclang (librocksdb-sys runs bindgen, which loads libclang; about 10 s)
#  - the psql client (the end-to-end tests drive the server with it)
set -euo pipefail

need=()
# bindgen loads libclang.so itself (libclang-cpp, which some images carry, is not it).
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/*/libclang-[0-9]*.so* >/dev/null 2>&1; then
  need+=(libclang-dev)
fi
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)

if [ ${#need[@]} -gt 0 ]; then
  echo "ensure-deps: installing ${need[*]} (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
