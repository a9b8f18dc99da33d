"""Failed jobs' log tails: which logs Snakemake names, and their last lines."""

from ctxscale.joblogs import failed_job_logs, failure_report, last_lines

RUN_LOG = """Error in rule prompts:
    jobid: 3
    log: logs/prompts/a.log (check log file(s) for error details)
Error in rule infer:
    log: logs/infer/m/a.log, logs/infer/m/b.log (check log file(s) for error details)
localrule fit:
    log: logs/fit/main.log
Error in rule prompts:
    log: logs/prompts/a.log (check log file(s) for error details)
"""


def test_failed_job_logs_in_order_once_each():
    assert failed_job_logs(RUN_LOG) == [
        "logs/prompts/a.log",
        "logs/infer/m/a.log",
        "logs/infer/m/b.log",
    ]
    assert failed_job_logs("localrule fit:\n    log: logs/fit/main.log\n") == []


def test_last_lines_skip_blanks_and_progress_redraws(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("one\n\n 10%|#\r 50%|##\r100%|###\nctxscale infer: error: bad\n\n")
    assert last_lines(log) == ["one", "100%|###", "ctxscale infer: error: bad"]
    assert last_lines(log, 1) == ["ctxscale infer: error: bad"]


def test_failure_report_names_each_log_and_its_tail(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/a.log").write_text("".join(f"line {i}\n" for i in range(30)))
    run_log = tmp_path / "run.log"
    run_log.write_text(
        "    log: logs/a.log (check log file(s) for error details)\n"
        "    log: logs/gone.log (check log file(s) for error details)\n"
    )
    report = failure_report([run_log], n=2)
    assert report == (
        "Last lines of logs/a.log:\n    line 28\n    line 29\n"
        "Last lines of logs/gone.log:\n    (not found)"
    )
    assert failure_report([tmp_path / "missing.log"]) == ""
