# The report beside the paper's numbers, and the manifest of every artifact.


rule report:
    input:
        config=artifacts.CONFIG_COPY,
        scores="results/scores.csv",
        points="results/points.csv",
        fits=expand("results/fits/{fit}.json", fit=artifacts.FITS),
        predictions=expand("results/predictions/{prediction}.csv", prediction=PREDICTIONS),
        figures=expand("figures/{figure}.pdf", figure=FIGURES),
        tables=expand("results/tables/{table}.csv", table=artifacts.TABLES),
    output:
        md="paper/report.md",
        html="paper/report.html",
    log:
        "logs/report.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale report --config {input.config} --results results --figures figures"
        " --out {output.md} > {log} 2>&1"


rule manifest:
    input:
        TARGETS,
    output:
        MANIFEST,
    params:
        config=CFG,
    log:
        "logs/manifest.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale manifest --config {params.config} --out {output} > {log} 2>&1"
