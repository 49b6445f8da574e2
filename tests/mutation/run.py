"""Mutation testing of the security-critical modules: ``python3 dev.py mutate [MODULE...]``.

For each module, mutmut makes small changes to its code one at a time (a comparison turned
around, a constant moved by one, a string changed, an argument dropped, ...) and runs the
module's unit tests against each; a change that no test notices is a *survivor*, a rule no
test pins. This prints each module's score and its survivors, and compares the score with the
last run's (docs/reliability.md §6 says how to read a survivor).

Why a staging tree: setup.cfg installs the folders protocol/, keys/, config/, node/ as
``lienthong.*`` through ``package_dir`` and an editable import hook, while mutmut names each
mutant after the path of its file and imports the mutated copies from its ``mutants/`` folder.
So each module gets ``build/mutation/<module>/`` holding ``lienthong/<folder>`` copies of the
four folders, a link to ``tests/`` and a ``pyproject.toml`` that configures mutmut: there the
path ``lienthong/protocol/receipt.py`` is the module ``lienthong.protocol.receipt``, the name
the tests import, and Python's path finder meets the mutated copy before the editable hook
(which is appended last to ``sys.meta_path``). mutmut's ``mutants/`` folder is kept between
runs, so an unchanged function is not tested again.

Equivalent mutants (a change that cannot alter behaviour) are listed with a reason in
``tests/mutation/equivalent.toml`` and left out of the score; nothing else is.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGING = ROOT / "build" / "mutation"
EQUIVALENT = Path(__file__).with_name("equivalent.toml")
FOLDERS = ("node", "protocol", "keys", "config")
TARGET = 95.0


@dataclass(frozen=True)
class Module:
    """A module under mutation testing and the unit tests that must pin its rules."""

    path: str
    tests: tuple[str, ...]

    @property
    def name(self) -> str:
        return "lienthong." + self.path.removesuffix(".py").replace("/", ".")

    @property
    def slug(self) -> str:
        return self.path.removesuffix(".py").replace("/", "-")


#: In the order of issue 22: the four first measured, then the rest of the security core.
MODULES = (
    Module("protocol/receipt.py",
           ("tests/protocol/test_receipt.py", "tests/protocol/test_receipt_rules.py",
            "tests/protocol/test_receipt_v3_rules.py")),
    Module("protocol/frames.py",
           ("tests/protocol/test_frames.py", "tests/protocol/test_frame_copies.py",
            "tests/protocol/test_frames_boundaries.py")),
    Module("keys/jws.py", ("tests/keys/test_jws.py", "tests/keys/test_jws_rules.py")),
    Module("node/store/audit_chain.py",
           ("tests/node/store/test_audit_chain.py",
            "tests/node/store/test_audit_chain_rules.py")),
    Module("protocol/envelope.py",
           ("tests/protocol/test_envelope.py", "tests/protocol/test_vectors.py",
            "tests/protocol/test_envelope_rules.py", "tests/protocol/test_envelope_v3.py",
            "tests/protocol/test_envelope_v3_rules.py")),
    Module("protocol/payload.py",
           ("tests/protocol/test_payload.py", "tests/protocol/test_payload_digests.py",
            "tests/protocol/test_payload_rules.py")),
    Module("protocol/status.py",
           ("tests/protocol/test_status.py", "tests/protocol/test_status_rules.py")),
    Module("protocol/connection.py",
           ("tests/protocol/test_connection.py", "tests/protocol/test_connection_rules.py")),
    Module("keys/keystore.py",
           ("tests/keys/test_keystore.py", "tests/keys/test_keystore_rules.py")),
    Module("keys/nodeid.py", ("tests/keys/test_nodeid.py", "tests/keys/test_nodeid_rules.py")),
    Module("keys/card.py", ("tests/keys/test_card.py", "tests/keys/test_card_rules.py")),
    Module("node/delivery/receipts.py",
           ("tests/node/delivery/test_receipts.py",
            "tests/node/delivery/test_receipts_rules.py")),
    Module("node/control/received.py",
           ("tests/node/control/test_received.py",
            "tests/node/control/test_received_rules.py")),
    Module("node/audit/heads.py",
           ("tests/node/audit/test_verify.py", "tests/node/audit/test_heads_rules.py")),
    Module("protocol/witness.py",
           ("tests/protocol/test_review_formats.py", "tests/protocol/test_witness_rules.py")),
    Module("protocol/reconciliation.py",
           ("tests/protocol/test_review_formats.py",
            "tests/protocol/test_reconciliation_rules.py")),
)

#: mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code): a timeout or a crash
#: is the tests noticing the change, so it counts as killed.
KILLED_CODES = {1, 3, 36, -24, 24, 152, 255, -11, -9}
SURVIVED_CODES = {0}


def _stage(module: Module) -> Path:
    """Build (or refresh) build/mutation/<slug>/ for ``module``; return its path."""
    stage = STAGING / module.slug
    package = stage / "lienthong"
    if package.exists():
        shutil.rmtree(package)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, package / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    tests = stage / "tests"
    if not tests.is_symlink():
        tests.symlink_to(ROOT / "tests", target_is_directory=True)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pytest_options = project["tool"]["pytest"]["ini_options"]
    tests_present = [test for test in module.tests if (ROOT / test).exists()]
    lines = ["# Written by tests/mutation/run.py for one module; rewritten on every run.",
             "[tool.pytest.ini_options]",
             f"addopts = {json.dumps(pytest_options['addopts'])}",
             f"markers = {json.dumps(pytest_options['markers'])}",
             f"filterwarnings = {json.dumps(pytest_options['filterwarnings'])}",
             "",
             "[tool.mutmut]",
             'source_paths = ["lienthong"]',
             f"only_mutate = {json.dumps(['lienthong/' + module.path])}",
             f"pytest_add_cli_args_test_selection = {json.dumps(tests_present)}",
             'pytest_add_cli_args = ["-p", "no:cacheprovider", "-x"]',
             "use_git_change_detection = false",
             ""]
    (stage / "pyproject.toml").write_text("\n".join(lines), encoding="utf-8")
    return stage


def _equivalents() -> dict[str, dict[str, str]]:
    """{module path: {mutant name: reason}} from tests/mutation/equivalent.toml."""
    data = tomllib.loads(EQUIVALENT.read_text(encoding="utf-8"))
    return {path: dict(entries) for path, entries in data.items()}


def _results(stage: Path, module: Module) -> dict[str, int | None]:
    meta = stage / "mutants" / "lienthong" / (module.path + ".meta")
    if not meta.exists():
        return {}
    exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return exit_codes


def _diff(stage: Path, name: str) -> list[str]:
    """The changed lines of one mutant, as mutmut shows them."""
    shown = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=stage,
                           capture_output=True, text=True)
    return [line for line in shown.stdout.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


@dataclass(frozen=True)
class Score:
    module: str
    mutants: int
    killed: int
    equivalent: int
    survivors: tuple[str, ...]
    not_run: int

    @property
    def percent(self) -> float:
        counted = self.mutants - self.equivalent
        return 100.0 * self.killed / counted if counted else 100.0

    def line(self) -> str:
        return (f"{self.module:32} {self.mutants:5} mutants {self.killed:5} killed "
                f"{self.equivalent:3} equivalent {len(self.survivors):4} survived "
                f"{self.percent:6.1f} %")


def _run_module(module: Module, jobs: int, equivalents: dict[str, str], *,
                report_only: bool) -> Score:
    stage = _stage(module)
    if not report_only:
        print(f"mutate: {module.path} with {', '.join(module.tests)}", flush=True)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)]
        subprocess.run(command, cwd=stage, env=env, stdout=subprocess.DEVNULL)
        # mutmut reuses a mutant's result while its function is unchanged, even when the
        # tests changed: test the survivors again, so a new test counts at once.
        again = [name for name, code in _results(stage, module).items()
                 if code not in KILLED_CODES]
        if again:
            subprocess.run(command + again, cwd=stage, env=env, stdout=subprocess.DEVNULL)
    results = _results(stage, module)
    stale = sorted(set(equivalents) - set(results))
    for name in stale:
        print(f"  note: {name} is listed as equivalent but no longer exists; update "
              f"{EQUIVALENT.relative_to(ROOT)}", flush=True)
    killed = sum(1 for code in results.values() if code in KILLED_CODES)
    if results and not killed:
        print(f"  warning: not one mutant was killed; the run itself probably failed. Run "
              f"`python -m mutmut run` in {stage.relative_to(ROOT)} to see why, or delete "
              f"its mutants/ folder and run again", flush=True)
    equivalent = [name for name in results if name in equivalents]
    survivors = tuple(sorted(name for name, code in results.items()
                             if code not in KILLED_CODES and name not in equivalents))
    not_run = sum(1 for code in results.values() if code is None)
    killed_equivalent = [name for name in equivalent if results[name] in KILLED_CODES]
    for name in killed_equivalent:
        print(f"  note: {name} is listed as equivalent but a test kills it; remove it from "
              f"{EQUIVALENT.relative_to(ROOT)}", flush=True)
    return Score(module.path, len(results), killed - len(killed_equivalent),
                 len(equivalent), survivors, not_run)


def _last_scores() -> dict[str, float]:
    path = STAGING / "last-scores.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dev.py mutate", description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help="paths such as protocol/receipt.py (default: all)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="mutants tested at once (default 1: the machine is shared)")
    parser.add_argument("--report", action="store_true",
                        help="print the last run's results without running again")
    parser.add_argument("--diffs", type=int, default=40,
                        help="show the changed lines of at most this many survivors per module")
    args = parser.parse_args(argv)
    by_path = {module.path: module for module in MODULES}
    unknown = [path for path in args.modules if path not in by_path]
    if unknown:
        print(f"mutate: unknown module(s) {', '.join(unknown)}; known: "
              f"{', '.join(by_path)}", file=sys.stderr)
        return 2
    chosen = [by_path[path] for path in args.modules] or list(MODULES)
    equivalents = _equivalents()
    last = _last_scores()
    scores = []
    for module in chosen:
        score = _run_module(module, args.jobs, equivalents.get(module.path, {}),
                            report_only=args.report)
        scores.append(score)
        print(score.line(), flush=True)
        stage = STAGING / module.slug
        for index, name in enumerate(score.survivors):
            print(f"  survived: {name}", flush=True)
            if index < args.diffs:
                for line in _diff(stage, name):
                    print(f"      {line.strip()[:110]}", flush=True)
        if score.not_run:
            print(f"  {score.not_run} mutants were not run (interrupted?)", flush=True)
    print("\nmodule                           score   last run  target", flush=True)
    failed = False
    for score in scores:
        before = last.get(score.module)
        shown = f"{before:6.1f} %" if before is not None else "     -  "
        mark = "ok" if score.percent >= TARGET else "BELOW"
        failed |= score.percent < TARGET
        print(f"{score.module:32} {score.percent:6.1f} % {shown}  {mark}", flush=True)
        last[score.module] = round(score.percent, 1)
    STAGING.mkdir(parents=True, exist_ok=True)
    (STAGING / "last-scores.json").write_text(json.dumps(last, indent=2, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
