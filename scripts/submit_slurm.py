"""Moved into the package: use `vicreg-edu submit ...` (same options, see --help); this shim keeps old commands working."""
from vicreg_edu.slurm import main
raise SystemExit(main())
