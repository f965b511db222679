"""Mutation testing of the modules that guard the network and the archive (run by scripts/mutation).

    python -m backstory_tools.mutation list                # the modules tests/mutation.toml maps
    python -m backstory_tools.mutation prepare MODULE      # lay out .mutation/<module>/, print its path
    python -m backstory_tools.mutation survivors MODULE    # the mutants a retest runs again, one a line
    python -m backstory_tools.mutation stub MODULE         # [[accepted]] entries for its survivors, to judge
    python -m backstory_tools.mutation report [MODULE...]  # the table, then each survivor's diff
    python -m backstory_tools.mutation report --markdown   # the table as docs/quality.md shows it

MODULE is a path in server/ as tests/mutation.toml lists it (``backstory/ssrf_guard.py``); no
MODULE means all of them. mutmut names a mutant after its module path relative to the folder it
runs in and puts only that folder's copy on sys.path, so each module gets a folder of its own
where ``backstory`` and ``tests`` link to the real ones: the tests then import the mutated copy
(mutants/backstory), never the installed package, and each module keeps its own verdict cache.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import repo_root

ROOT = repo_root()
CONFIG = ROOT / "tests" / "mutation.toml"
WORK = ROOT / ".mutation"

# mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into the columns of the report.
_KILLED = {1, 3, 37}
_SURVIVED = {0}
_TIMEOUT = {24, -24, 152, 255, 36}
_NO_TESTS = {5, 33}


def load_config() -> dict:
    return tomllib.loads(CONFIG.read_text("utf-8"))


def modules(config: dict, wanted: list[str]) -> list[str]:
    known = list(config["modules"])
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise SystemExit(f"not in {CONFIG.relative_to(ROOT)}: {', '.join(unknown)} (known: {', '.join(known)})")
    return wanted or known


def work_dir(module: str) -> Path:
    return WORK / module.removesuffix(".py").replace("/", "_")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r} here")


def _toml_table(name: str, table: dict) -> str:
    return f"[{name}]\n" + "".join(f"{key} = {_toml_value(value)}\n" for key, value in table.items())


def prepare(module: str, config: dict) -> Path:
    """The folder mutmut runs in for ``module``: links to the package and the tests, and a
    pyproject.toml holding the project's mutmut and pytest settings narrowed to this module."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    mutmut = dict(project["tool"]["mutmut"])
    mutmut["only_mutate"] = [module]
    mutmut["pytest_add_cli_args_test_selection"] = list(config["modules"][module])
    where = work_dir(module)
    where.mkdir(parents=True, exist_ok=True)
    for name, target in (("backstory", ROOT / "server" / "backstory"), ("tests", ROOT / "tests")):
        link = where / name
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)
    text = (
        "# Written by backstory_tools.mutation from ../../pyproject.toml and ../../tests/mutation.toml.\n"
        + _toml_table("tool.mutmut", mutmut)
        + "\n"
        + _toml_table("tool.pytest.ini_options", project["tool"]["pytest"]["ini_options"])
    )
    (where / "pyproject.toml").write_text(text, "utf-8")
    return where


def verdicts(module: str) -> dict[str, int | None]:
    """mutmut's exit code by mutant name for ``module`` (empty before its first run)."""
    meta = work_dir(module) / "mutants" / (module + ".meta")
    if not meta.is_file():
        return {}
    return json.loads(meta.read_text("utf-8"))["exit_code_by_key"]


def mutated_lines(module: str, mutant: str) -> str:
    """The mutated line(s) of a mutant, as ``mutmut show`` prints them (the "+" side of its diff)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant  # in process: `mutmut show` takes seconds a call

    with contextlib.chdir(work_dir(module)):
        shown = get_diff_for_mutant(mutant, path=module)
    return " ⏎ ".join(
        line[1:].strip() for line in shown.splitlines() if line.startswith("+") and not line.startswith("+++")
    )


def to_retest(module: str, config: dict) -> list[str]:
    """The mutants a retest names: mutmut reruns a decided mutant only when named, and then runs
    only those named. The survivors not accepted as equivalent, those no test reached and those
    not run yet; none (a full run) when the module's tests changed, since mutmut then forgets
    every verdict anyway (and a full run checks the accepted ones again)."""
    from mutmut.configuration import config as mutmut_config, reset_config

    stats = work_dir(module) / "mutants" / "mutmut-stats.json"
    if not stats.is_file():
        return []
    with contextlib.chdir(work_dir(module)):
        reset_config()
        now = mutmut_config().config_fingerprint()
    before = json.loads(stats.read_text("utf-8")).get("config_fingerprint", {})
    if any(before.get(group) != now[group] for group in ("test_execution", "test_selection")):
        return []
    accepted = {a["mutant"] for a in config.get("accepted", [])}
    return [m for m, code in verdicts(module).items()
            if (code in _SURVIVED and m not in accepted) or code in _NO_TESTS or code is None]


@dataclass
class ModuleResult:
    module: str
    mutants: int = 0
    killed: int = 0
    timeout: int = 0
    no_tests: int = 0
    not_checked: int = 0
    accepted: list[tuple[str, str, str]] = field(default_factory=list)  # (mutant, line, reason)
    survivors: list[tuple[str, str]] = field(default_factory=list)  # (mutant, line)
    stale: list[str] = field(default_factory=list)  # accepted entries that no longer match

    @property
    def done(self) -> bool:
        return self.mutants > 0 and not (self.survivors or self.no_tests or self.not_checked or self.stale)


def result(module: str, config: dict) -> ModuleResult:
    accepted = {a["mutant"]: a for a in config.get("accepted", []) if a["mutant"].startswith(_prefix(module))}
    out = ModuleResult(module)
    found = verdicts(module)
    for mutant, code in sorted(found.items(), key=lambda item: _natural(item[0])):
        out.mutants += 1
        if code in _KILLED:
            out.killed += 1
        elif code in _TIMEOUT:
            out.timeout += 1
        elif code in _NO_TESTS:
            out.no_tests += 1
        elif code is None:
            out.not_checked += 1
        else:  # survived, or a verdict a test cannot vouch for (suspicious, segfault)
            line = mutated_lines(module, mutant)
            entry = accepted.pop(mutant, None)
            if entry is not None and entry["line"] == line:
                out.accepted.append((mutant, line, entry["reason"]))
            else:
                if entry is not None:
                    out.stale.append(f"{mutant}: accepted for `{entry['line']}`, now mutates `{line}`")
                out.survivors.append((mutant, line))
    # an acceptance whose mutant is now killed (or gone) is stale too: the list stays honest
    out.stale += [f"{name}: accepted but not a survivor now" for name in accepted if found]
    return out


def _prefix(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".") + "."


def _natural(name: str) -> tuple[str, int]:
    base, _, number = name.rpartition("__mutmut_")
    return base, int(number) if number.isdigit() else 0


def table(results: list[ModuleResult], markdown: bool) -> str:
    head = ("module", "mutants", "killed", "timeout", "accepted", "survived", "no tests", "unchecked", "done")
    rows = [
        (r.module, r.mutants, r.killed, r.timeout, len(r.accepted), len(r.survivors), r.no_tests, r.not_checked,
         "yes" if r.done else "no")
        for r in results
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(f"`{c}`" if i == 0 else str(c) for i, c in enumerate(row)) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in (head, *rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backstory_tools.mutation", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("list", "prepare", "survivors", "stub", "report"))
    parser.add_argument("modules", nargs="*")
    parser.add_argument("--markdown", action="store_true", help="report: the table and the accepted list as Markdown")
    args = parser.parse_intermixed_args(argv)
    config = load_config()
    chosen = modules(config, args.modules)
    if args.command == "list":
        print("\n".join(chosen))
        return 0
    if args.command == "prepare":
        for module in chosen:
            print(prepare(module, config))
        return 0
    if args.command == "survivors":
        for module in chosen:
            for mutant in to_retest(module, config):
                print(mutant)
        return 0
    results = [result(module, config) for module in chosen]
    if args.command == "stub":  # [[accepted]] entries for the survivors, to judge one by one
        for r in results:
            for mutant, line in r.survivors:
                print(f"[[accepted]]\nmutant = {_toml_value(mutant)}\nline = {_toml_value(line)}\nreason = \"\"\n")
        return 0
    print(table(results, args.markdown))
    for r in results:
        if args.markdown:  # the accepted mutants with their reasons; survivors are counted only
            if r.accepted:
                print(f"\nAccepted as equivalent in `{r.module}`:\n")
            for mutant, line, reason in r.accepted:
                print(f"- `{mutant.rpartition('.')[2]}` `{line}`: {reason}")
            continue
        for mutant, line in r.survivors:
            print(f"SURVIVED {mutant}: {line}")
        for note in r.stale:
            print(f"STALE {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
