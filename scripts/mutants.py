"""Plant small bugs in a copy of the code and check that the fast tests catch each one.

Each mutant is one text substitution in one file of ``src/ctxscale``. For every mutant the
repository's files (tracked and untracked-but-not-ignored, as ``git ls-files`` lists them;
``--head`` takes the last commit instead) are copied to a scratch directory, the
substitution is made there (never in this checkout), and pytest runs the non-slow tests
that exercise that file (``--all``: the whole non-slow suite). A mutant is *killed* when
at least one test fails; the table names the failing tests. Exit status 1 if a mutant
survives, the unmutated copy fails, or a substitution no longer matches its file.

    .venv/bin/python scripts/mutants.py              # every mutant, its module's tests
    .venv/bin/python scripts/mutants.py --all -k tol # mutants whose name has "tol"
    .venv/bin/python scripts/mutants.py --tests tests/test_aggregate.py  # other tests
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

AGG, MET, LAW = (
    "src/ctxscale/analysis/aggregate.py",
    "src/ctxscale/data/metrics.py",
    "src/ctxscale/analysis/law.py",
)
# (name, file, old text, new text): old must occur exactly once in the file.
MUTANTS = [
    (
        "points: score divided by datasets, not groups",
        AGG,
        'row["score"] = math.fsum(m[1] for m in means) / len(means)',
        'row["score"] = math.fsum(m[1] for m in means) / len(grp)',
    ),
    (
        "points: n_pmt divided by datasets, not groups",
        AGG,
        'row["n_pmt"] = math.fsum(m[0] for m in means) / len(means)',
        'row["n_pmt"] = math.fsum(m[0] for m in means) / len(grp)',
    ),
    (
        "points: first dataset's score instead of the mean",
        AGG,
        'row["score"] = math.fsum(m[1] for m in means) / len(means)',
        'row["score"] = means[0][1]',
    ),
    (
        "points: max score instead of the mean",
        AGG,
        'row["score"] = math.fsum(m[1] for m in means) / len(means)',
        'row["score"] = max(m[1] for m in means)',
    ),
    (
        "points: first dataset's n_pmt instead of the mean",
        AGG,
        'row["n_pmt"] = math.fsum(m[0] for m in means) / len(means)',
        'row["n_pmt"] = means[0][0]',
    ),
    (
        "groups: first module's score instead of the group mean",
        AGG,
        'return math.fsum(grp["n_pmt"]) / len(grp), math.fsum(grp["score"]) / len(grp)',
        'return math.fsum(grp["n_pmt"]) / len(grp), float(grp["score"].iloc[0])',
    ),
    (
        "scores: excluded records counted in the divisor",
        AGG,
        '"score": math.fsum(float(r["score"]) for r in ok) / len(ok),',
        '"score": math.fsum(float(r["score"]) for r in ok) / len(records),',
    ),
    (
        "scores: excluded records scored",
        AGG,
        '"score": math.fsum(float(r["score"]) for r in ok) / len(ok),',
        '"score": math.fsum(float(r["score"]) for r in records) / len(records),',
    ),
    (
        "scores: n_pmt over excluded records too",
        AGG,
        '"n_pmt": math.fsum(float(r["n_pmt"]) for r in ok) / len(ok),',
        '"n_pmt": math.fsum(float(r["n_pmt"]) for r in records) / len(records),',
    ),
    (
        "math_equiv: tolerance x1.5",
        MET,
        "def math_equiv(output: str, reference: str, tol: float = 1e-3)",
        "def math_equiv(output: str, reference: str, tol: float = 1.5e-3)",
    ),
    (
        "math_equiv: tolerance x0.1",
        MET,
        "def math_equiv(output: str, reference: str, tol: float = 1e-3)",
        "def math_equiv(output: str, reference: str, tol: float = 1e-4)",
    ),
    (
        "math_equiv: relative instead of absolute tolerance",
        MET,
        "math.isclose(gold, pred, abs_tol=tol)",
        "math.isclose(gold, pred, rel_tol=tol)",
    ),
    (
        "math_equiv: strict < and no relative tolerance",
        MET,
        "math.isclose(gold, pred, abs_tol=tol)",
        "abs(gold - pred) < tol",
    ),
    (
        "math_equiv: first number instead of the last",
        MET,
        "return _number_value(found[-1])",
        "return _number_value(found[0])",
    ),
    (
        "law: default penalty width 0.2 instead of 0.1",
        LAW,
        "DEFAULT_PENALTY_WIDTH = 0.1",
        "DEFAULT_PENALTY_WIDTH = 0.2",
    ),
    (
        "law: the coupling scales B by n_pmt, not C (fit coordinates)",
        LAW,
        "g = saturating_from_log(lb[:, at_v] + t[x.gamma_at][:, None] * x.u[None, :])",
        "g = saturating_from_log(lb[:, at_v] + t[x.gamma_at][:, None] * x.v[None, :])",
    ),
    (
        "law: gamma dropped from the law's prompt term",
        LAW,
        "    if gamma != 0.0:\n        log_x = log_x + gamma",
        "    if False:\n        log_x = log_x + gamma",
    ),
    (
        "law: gamma's jacobian column over n_pmt, not C",
        LAW,
        "cols.append(dgb * x.u * fp)",
        "cols.append(dgb * x.v * fp)",
    ),
]
# The fast tests of each mutated file.
TESTS = {
    AGG: ["tests/test_aggregate.py", "tests/test_oracles_aggregate.py"],
    MET: ["tests/test_metrics.py", "tests/test_oracles_metrics.py"],
    LAW: [
        "tests/test_law.py",
        "tests/test_oracles_law.py",
        "tests/test_fit.py::test_jacobian_matches_finite_differences",
    ],
}


def repo_files(head: bool) -> dict[str, bytes]:
    """Path -> content of the repository's files (working tree, or HEAD with ``head``)."""
    if head:
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"],
            capture_output=True,
            check=True,
        ).stdout
        out = {}
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            for member in tf.getmembers():
                if member.isfile():
                    out[member.name] = tf.extractfile(member).read()
        return out
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "-c", "-o", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    return {p: (ROOT / p).read_bytes() for p in listed.split("\0") if p and (ROOT / p).is_file()}


def make_copy(files: dict[str, bytes], dest: Path) -> None:
    for rel, data in files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if (ROOT / ".venv").exists():  # tests that call .venv/bin/... find it
        (dest / ".venv").symlink_to(ROOT / ".venv")


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[int, list[str], float]:
    """pytest's exit status, the failing test ids, and the seconds it took."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "-rf", "-m", "not slow", "-p", "no:cacheprovider"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [*cmd, *tests], cwd=copy, capture_output=True, text=True, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return -1, ["(timed out)"], time.perf_counter() - t0
    failed = re.findall(r"^FAILED (.+?)(?: - .*)?$", proc.stdout, re.M)
    if proc.returncode not in (0, 1):  # collection or usage error: show it
        failed = failed or [proc.stdout.strip().splitlines()[-1] if proc.stdout else "error"]
    return proc.returncode, failed, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="", help="only mutants whose name contains this text")
    ap.add_argument("--all", action="store_true", help="run every non-slow test per mutant")
    ap.add_argument("--tests", nargs="+", help="run these test paths per mutant instead")
    ap.add_argument("--head", action="store_true", help="mutate the last commit's files")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per pytest run")
    args = ap.parse_args(argv)

    chosen = [m for m in MUTANTS if args.k.lower() in m[0].lower()]
    files = repo_files(args.head)

    def tests_for(path: str) -> list[str]:
        if args.tests:
            return args.tests
        return ["tests"] if args.all else TESTS[path]

    status = 0
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="ctxscale-mutants-") as tmp:
        base = Path(tmp) / "unmutated"
        make_copy(files, base)
        used = sorted({t for _, path, _, _ in chosen for t in tests_for(path)})
        rc, failed, secs = run_tests(base, used, args.timeout)
        print(f"unmutated copy: {' '.join(used)}: exit {rc} in {secs:.0f} s", flush=True)
        if rc != 0:
            print("the unmutated copy fails: " + ", ".join(failed), file=sys.stderr)
            return 1
        shutil.rmtree(base)
        for name, path, old, new in chosen:
            text = files[path].decode()
            if text.count(old) != 1:
                rows.append(
                    (name, "STALE", f"{path}: the text to replace occurs {text.count(old)}x")
                )
                status = 1
                continue
            copy = Path(tmp) / "mutant"
            make_copy({**files, path: text.replace(old, new).encode()}, copy)
            rc, failed, secs = run_tests(copy, tests_for(path), args.timeout)
            shutil.rmtree(copy)
            if rc == 0:
                rows.append((name, "SURVIVED", f"no test failed ({secs:.0f} s)"))
                status = 1
            else:
                shown = ", ".join(f.split("/")[-1] for f in failed[:2])
                more = f" (+{len(failed) - 2} more)" if len(failed) > 2 else ""
                rows.append((name, "killed", f"{len(failed)} failed: {shown}{more}"))
            print(f"{rows[-1][1]:8}  {name}", flush=True)
    width = max(len(r[0]) for r in rows) if rows else 10
    print()
    print(f"{'mutant':{width}}  {'result':8}  by")
    for name, result, detail in rows:
        print(f"{name:{width}}  {result:8}  {detail}")
    killed = sum(r[1] == "killed" for r in rows)
    print(f"\n{killed} of {len(rows)} mutants killed")
    return status


if __name__ == "__main__":
    sys.exit(main())
