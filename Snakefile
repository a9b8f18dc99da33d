# ctxscale: the context-aware scaling law experiment, from prompts to the paper report.
#
#   snakemake --cores all                                  # default scale (config.yaml)
#   snakemake --cores all --configfile workflow/presets/paper.yaml   # the paper's scale
#   snakemake --cores all figures/fig2_contour_arithmetic.pdf        # one figure only
#
# Rules are thin: each calls one `ctxscale` subcommand. docs/workflow.md explains the DAG.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# `snakemake --report report.html`: the figures and tables with their catalog captions.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/miniworld.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/scores.smk"
include: "workflow/rules/fits.smk"
include: "workflow/rules/ood.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        TARGETS,
        MANIFEST,
        artifacts.REPORT,
