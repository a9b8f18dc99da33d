# Aggregation: shards -> results/scores.csv and results/points.csv.


rule scores:
    input:
        manifests=INFERENCE_OUTPUTS,
        # every shard, so that a deleted one is missing here and its inference job reruns
        shards=[
            artifacts.shard_path(m.name, d, k) for m in MODELS.values() for d, ks in m.plan for k in ks
        ],
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
