# Sourced by scripts/serve and scripts/test: makes uv runnable, installing it with pip when it is
# missing. Sets UV, an array holding the command that runs it (`exec "${UV[@]}" …` — exec cannot
# run a shell function), and defines a function `uv` that calls it, for use after sourcing.
# `type -P` looks on PATH only: `command -v uv` would find the function itself once defined.
if type -P uv >/dev/null 2>&1; then
  UV=("$(type -P uv)")
else
  if ! python3 -m uv --version >/dev/null 2>&1; then
    echo "installing uv with pip..." >&2
    # A Python that is "externally managed" (PEP 668, e.g. Debian's) refuses the first two; uv
    # is a self-contained tool, so the user-level install is safe to force there.
    python3 -m pip install --quiet uv >&2 2>/dev/null \
      || python3 -m pip install --quiet --user uv >&2 2>/dev/null \
      || python3 -m pip install --quiet --user --break-system-packages uv >&2
  fi
  UV=(python3 -m uv)
fi
uv() { "${UV[@]}" "$@"; }
