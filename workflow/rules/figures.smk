# Figures (PDF + PNG) and tables (CSV + Markdown), each its own target.


rule figure:
    input:
        unpack(figure_inputs),
    output:
        pdf="figures/{figure}.pdf",
        png="figures/{figure}.png",
    params:
        options=lambda wildcards, input: cli_options(dict(input.items())),
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
        csv="results/tables/{table}.csv",
        md="results/tables/{table}.md",
    params:
        options=lambda wildcards, input: cli_options(dict(input.items())),
    log:
        "logs/table/{table}.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale table {wildcards.table} {params.options} --out {output.csv} > {log} 2>&1"
