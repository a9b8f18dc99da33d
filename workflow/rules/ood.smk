# Out-of-distribution checks: the main fit predicts the families it never saw
# (role ood: other compute; role technique: another context-extension method).


rule predict:
    input:
        fit="results/fits/main.json",
        points="results/points.csv",
    output:
        "results/predictions/{prediction}.csv",
    log:
        "logs/predict/{prediction}.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale predict {input.fit} {input.points} --out {output}"
        " --where role={wildcards.prediction} > {log} 2>&1"
