"""The Snakemake workflow's DAG for single targets: a figure or a table runs only what it
needs, and figures of tasks the config leaves out are not requested.

Dry runs only, as in test_workflow.py (split from it so that pytest-xdist's --dist loadfile
can run the two files' Snakemake calls on different workers).
"""

from test_workflow import DEFAULT_COUNTS, job_counts, snakemake


def test_one_figure_runs_only_what_it_needs(tmp_path):
    counts = job_counts(tmp_path, "figures/fig2_contour_arithmetic.pdf")
    assert counts == {k: DEFAULT_COUNTS[k] for k in DEFAULT_COUNTS if "mini" in k} | {
        "fetch_model": 2,
        "prompts": 2,
        "infer": 4,
        "scores": 1,
        "fit": 1,  # main only
        "figure": 1,
    }


def test_one_table_runs_only_what_it_needs(tmp_path):
    counts = job_counts(tmp_path, "results/tables/ablation.csv")
    # main, no_penalty and penalty_variant
    assert counts["fit"] == 3 and counts["table"] == 1 and "figure" not in counts


def test_figures_of_absent_tasks_are_not_requested(tmp_path):
    (tmp_path / "arith.yaml").write_text("miniworld: {datasets: [mini_arith]}\n")
    arith = str(tmp_path / "arith.yaml")
    proc = snakemake(tmp_path, "-n", "figures/fig4_contour_translation.pdf", "--configfile", arith)
    assert proc.returncode != 0
    assert "MissingRuleException" in proc.stdout + proc.stderr
