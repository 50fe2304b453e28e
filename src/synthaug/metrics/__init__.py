"""Classification metrics, plots (and later FID/KID)."""
