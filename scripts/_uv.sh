# Sourced by scripts/serve and scripts/test: sets UV to the command that runs uv, installing uv
# with pip when it is missing. An array, not a shell function: `command -v uv` would find a
# function named uv itself, and `exec` cannot run a function.
if command -v uv >/dev/null 2>&1; then
  UV=(uv)
else
  if ! python3 -m uv --version >/dev/null 2>&1; then
    echo "installing uv with pip..." >&2
    python3 -m pip install --quiet uv >&2 || python3 -m pip install --quiet --user uv >&2
  fi
  UV=(python3 -m uv)
fi
