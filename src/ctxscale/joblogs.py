"""The last lines of each failed job's log, for the terminal (the workflow's ``onerror``).

Rules send a command's output to their ``log:`` file; when a job fails, Snakemake names
that file in its run log (``log: PATH (check log file(s) for error details)``). The
workflow prints the end of each named file, where the one-line error is, so the reason
for a failure is on the terminal without opening a log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

N_LINES = 15
_FAILED_LOG = re.compile(r"^\s*log: (.+) \(check log file\(s\) for error details\)\s*$", re.M)


def failed_job_logs(run_log: str) -> list[str]:
    """Log files of the failed jobs named in Snakemake's run log text, in order, once each."""
    found: list[str] = []
    for match in _FAILED_LOG.finditer(run_log):
        for path in match.group(1).split(", "):
            if path not in found:
                found.append(path)
    return found


def last_lines(path: str | Path, n: int = N_LINES) -> list[str]:
    """The last ``n`` non-blank lines of ``path``; a progress bar's redraws count as one."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")  # keep \r as written
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1].rstrip() for line in text.split("\n")]
    return [line for line in lines if line][-n:]


def failure_report(run_logs: Iterable[str | Path], n: int = N_LINES) -> str:
    """Each failed job's log path and its last ``n`` lines ("" when none is named)."""
    text = "".join(_read(Path(p)) for p in run_logs)
    blocks = []
    for log in failed_job_logs(text):
        try:
            body = "\n".join(f"    {line}" for line in last_lines(log, n)) or "    (empty)"
        except OSError:
            body = "    (not found)"
        blocks.append(f"Last lines of {log}:\n{body}")
    return "\n".join(blocks)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
