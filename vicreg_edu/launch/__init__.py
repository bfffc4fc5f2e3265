"""Launch scripts shipped with the package: ``multinode.sbatch`` (``srun torchrun`` on SLURM).

``vicreg-edu submit --print-sbatch`` prints its path (on stderr) and its content (on stdout).
"""
