# The report beside the paper's numbers, and the manifest of every artifact.


rule report:
    input:
        unpack(report_inputs),
    output:
        md="paper/report.md",
        html="paper/report.html",
    params:
        options=lambda wildcards, input: cli_options(dict(input.items())),
    log:
        "logs/report.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale report {params.options} --figures-dir figures --out {output.md} > {log} 2>&1"


rule manifest:
    input:
        TARGETS,
    output:
        MANIFEST,
    log:
        "logs/manifest.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale manifest --config \"$CTXSCALE_CONFIG\" --out {output} > {log} 2>&1"
