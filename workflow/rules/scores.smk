# Aggregation: shards -> results/scores.csv and results/points.csv.


rule scores:
    input:
        INFERENCE_OUTPUTS,
    output:
        scores="results/scores.csv",
        points="results/points.csv",
        sensitivity=artifacts.sensitivity_points(config),
    params:
        aggregation=config["scores"]["aggregation"],
        models=[settings_of(m) for m in MODELS],
    log:
        "logs/scores.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale scores --config \"$CTXSCALE_CONFIG\" --out {output.scores}"
        " --points {output.points} > {log} 2>&1"
