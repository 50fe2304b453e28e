"""Classification scores, FID/KID and generator readings, verdicts, sweeps, plots and the report."""
