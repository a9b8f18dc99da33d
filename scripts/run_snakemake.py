"""`python -m snakemake` without the SLURM plugin's controller probe, unless SLURM is used.

Snakemake imports every installed executor plugin to build its command line, and importing
snakemake-executor-plugin-slurm runs ``scontrol show config`` for one help text. Where
SLURM is installed but its controller is down, that call waits ~9 s before it fails, on
every Snakemake call. This entry point hides ``sinfo`` from the plugin while it is
imported, so the help text takes its "SLURM not detected" branch without calling
``scontrol``. When the command line or ``SNAKEMAKE_PROFILE`` mentions slurm (the slurm
executor, profile or options) nothing is hidden. Once imported, the plugin sees the real
``sinfo`` again; every other argument goes to Snakemake unchanged.

    python scripts/run_snakemake.py -n -s Snakefile --cores 1
"""

from __future__ import annotations

import os
import shutil
import sys


def uses_slurm(argv: list[str], environ: dict[str, str] | os._Environ) -> bool:
    """Whether this Snakemake call may run jobs through SLURM."""
    words = [*argv, environ.get("SNAKEMAKE_PROFILE", "")]
    return any("slurm" in word.lower() for word in words)


def import_slurm_plugin_without_probe() -> None:
    """Import the SLURM executor plugin while ``shutil.which('sinfo')`` answers None."""
    real_which = shutil.which

    def which(cmd, *args, **kwargs):
        return None if os.path.basename(str(cmd)) == "sinfo" else real_which(cmd, *args, **kwargs)

    shutil.which = which
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:  # plugin not installed: nothing to hide
        pass
    finally:
        shutil.which = real_which


def main() -> None:
    if not uses_slurm(sys.argv[1:], os.environ):
        import_slurm_plugin_without_probe()
    from snakemake.cli import main as snakemake_main

    snakemake_main()


if __name__ == "__main__":
    main()
