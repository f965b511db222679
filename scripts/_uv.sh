# Sourced by scripts/serve and scripts/test: makes `uv` available (installs it with pip when missing).
uv() {
  if command -v uv >/dev/null 2>&1; then command uv "$@"; return; fi
  if ! python3 -m uv --version >/dev/null 2>&1; then
    echo "installing uv with pip..." >&2
    python3 -m pip install --quiet uv >&2 || python3 -m pip install --quiet --user uv >&2
  fi
  python3 -m uv "$@"
}
