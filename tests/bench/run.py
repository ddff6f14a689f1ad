"""`make bench`: run every benchmark script in tests/bench and print their tables.

bench_query.py runs first (with ``--n``/``--runs`` from this command line); every other
``tests/bench/bench_*.py`` that defines ``main()`` runs after it with its own defaults. Each script's
``main`` prints its table (and may return it as a string); this collects the returned tables and prints
them together at the end. A failing benchmark is reported and the others still run; the exit status is
non-zero if any failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # scripts import their siblings (synth) as top-level modules


def discover() -> list[Path]:
    scripts = sorted(HERE.glob("bench_*.py"))
    return sorted(scripts, key=lambda p: p.name != "bench_query.py")  # query first, then by name


def load(path: Path) -> ModuleType:
    if path.stem in sys.modules:
        return sys.modules[path.stem]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def call_main(main: Any, argv: list[str]) -> Any:
    """``main(argv)`` when it takes an argument (so it does not parse this command line), else ``main()``."""
    try:
        takes_argv = bool(inspect.signature(main).parameters)
    except (TypeError, ValueError):
        takes_argv = True
    return main(argv) if takes_argv else main()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the benchmarks in tests/bench.")
    parser.add_argument("--n", type=int, default=None, help="studies in the synthetic library (bench_query)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per command (bench_query)")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only bench_NAME.py (repeatable)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scripts = discover()
    if args.only:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in args.only}
        scripts = [p for p in scripts if p.stem.removeprefix("bench_") in wanted]
        missing = wanted - {p.stem.removeprefix("bench_") for p in scripts}
        if missing:
            print(f"no such benchmark: {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    tables: list[tuple[str, str]] = []
    failed: list[str] = []
    for path in scripts:
        print(f"== {path.name}", file=sys.stderr, flush=True)
        script_argv: list[str] = []
        if path.name == "bench_query.py":
            script_argv += ["--n", str(args.n)] if args.n is not None else []
            script_argv += ["--runs", str(args.runs)] if args.runs is not None else []
        try:
            module = load(path)
            main_func = getattr(module, "main", None)
            if main_func is None:
                print(f"{path.name}: no main(), skipped", file=sys.stderr)
                continue
            result = call_main(main_func, script_argv)
        except (Exception, SystemExit) as exc:  # one broken benchmark must not hide the others
            if isinstance(exc, SystemExit) and exc.code in (0, None):
                continue
            traceback.print_exc()
            failed.append(path.name)
            continue
        if isinstance(result, str):
            tables.append((path.name, result))
        elif isinstance(result, int) and not isinstance(result, bool) and result != 0:
            failed.append(path.name)
    if len(tables) > 1:
        print("\n# All benchmark tables\n")
        for name, table in tables:
            print(f"<!-- {name} -->\n{table}")
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
