# Figures (PDF + PNG) and tables (CSV + Markdown), each its own target. The PNGs and CSVs
# are marked for Snakemake's own report (`snakemake --report report.html`), captioned from
# the catalog.


rule figure:
    input:
        unpack(figure_inputs),
    output:
        pdf="figures/{figure}.pdf",
        png=report(
            "figures/{figure}.png",
            caption="../report/output.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
    params:
        options=lambda wildcards, input: cli_options(dict(input.items())),
        caption=lambda wildcards: catalog.FIGURES[wildcards.figure].caption,
    log:
        "logs/figure/{figure}.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale figure {wildcards.figure} {params.options} --out {output.pdf} > {log} 2>&1"


rule table:
    input:
        unpack(table_inputs),
    output:
        csv=report(
            "results/tables/{table}.csv",
            caption="../report/output.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md="results/tables/{table}.md",
    params:
        options=lambda wildcards, input: cli_options(dict(input.items())),
        caption=lambda wildcards: catalog.TABLES[wildcards.table].caption,
    log:
        "logs/table/{table}.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale table {wildcards.table} {params.options} --out {output.csv} > {log} 2>&1"
