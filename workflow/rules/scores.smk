# Aggregation: shards -> results/scores.csv and results/points.csv (and the sensitivity
# tables: the other aggregation's points, the corrected metric's scores).


rule scores:
    input:
        manifests=INFERENCE_OUTPUTS,
        # every shard: the DAG knows them, so `--forcerun scores` regenerates a deleted one
        shards=shard_files(MODELS),
    output:
        scores="results/scores.csv",
        points="results/points.csv",
        sensitivity=artifacts.sensitivity_points(config),
        corrected=artifacts.CORRECTED_SCORES,
    params:
        aggregation=config["scores"]["aggregation"],
        models=[settings_of(m) for m in MODELS],
    log:
        "logs/scores.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale scores --config \"$CTXSCALE_CONFIG\" --out {output.scores}"
        " --points {output.points} --corrected {output.corrected} > {log} 2>&1"
