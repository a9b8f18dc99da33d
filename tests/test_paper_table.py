"""The paper's model table against the paper preset as Snakemake resolves it.

The numbers below are typed from the paper's table (PAPER.md, "Models"; the full table in
its seeds): N non-embedding parameters, D = 2.0T + the context-extension tokens, n_ctx,
and C as printed (4-5 significant digits).
"""

import pytest
from conftest import PAPER_C  # the paper's printed C per n_ctx (PAPER.md model table)

from ctxscale import artifacts

N_7B, N_13B = 6_476_271_616, 12_688_184_320
# n_ctx: extension tokens added to D = 2.0T
EXTENSION = {4096: 0.0, 8192: 0.210e9, 16384: 0.419e9, 32768: 0.836e9, 65536: 1.678e9}
EXTENSION[131072] = 3.355e9
# The two base rows where 6 N D does not round to the printed C (docs/workflow.md):
# 6 x 6,476,271,616 x 2.0e12 = 7.77153e22 and 6 x 12,688,184,320 x 2.0e12 = 1.52258e23.
SIX_N_D_OF_BASE = {"7b": 7.7715e22, "13b": 1.5226e23}


@pytest.fixture(scope="module")
def fitted(snakemake_config):
    """The fitted checkpoints of the resolved paper preset, keyed by (size, n_ctx)."""
    specs = [s for s in artifacts.models(snakemake_config("paper.yaml")) if s.role == "fit"]
    out = {}
    for spec in specs:
        size = "13b" if "13b" in spec.family else "7b"
        assert (size, spec.n_ctx) not in out, spec.name
        out[(size, spec.n_ctx)] = spec
    return out


def test_twelve_fitted_checkpoints_at_the_papers_context_limits(fitted):
    want = {(size, n_ctx) for size in ("7b", "13b") for n_ctx in EXTENSION}
    assert set(fitted) == want


@pytest.mark.parametrize("size", ["7b", "13b"])
@pytest.mark.parametrize("n_ctx", sorted(EXTENSION))
def test_N_D_and_C_of_each_checkpoint(fitted, size, n_ctx):
    spec = fitted[(size, n_ctx)]
    params, tokens, compute = spec.N, spec.D, spec.C
    assert params == {"7b": N_7B, "13b": N_13B}[size]
    assert tokens == 2.0e12 + EXTENSION[n_ctx]
    assert spec.n_ctx == n_ctx
    assert compute == 6 * params * tokens
    printed = PAPER_C[size][n_ctx]
    assert compute == pytest.approx(printed, rel=1e-4)
    if n_ctx == 4096:
        assert float(f"{compute:.5g}") == SIX_N_D_OF_BASE[size] != printed
    else:
        assert float(f"{compute:.5g}") == printed  # agrees to every printed digit


def test_checkpoints_are_the_authors_hub_models(fitted):
    for (size, n_ctx), spec in fitted.items():
        if n_ctx == 4096:
            assert spec.hub_id == f"meta-llama/Llama-2-{size}-hf"
        else:
            assert spec.hub_id == f"WangResearchLab/Yarn-Llama-2-{size}-{n_ctx // 1024}k"
