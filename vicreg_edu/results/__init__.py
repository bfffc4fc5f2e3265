"""Precomputed results shipped with the package (JSON), read with ``vicreg_edu.experiments.load_results``."""
