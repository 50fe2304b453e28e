"""What every stage runs on: errors, atomic files, params and their rules, seeds, devices and processes, the resume
format, generator runs per seed, MLflow tracking, provenance, the stage runner and the figure helpers."""
