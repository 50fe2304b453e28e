"""Classification scores, FID/KID with the generator readings (diversity, recognition) and paired verdicts."""
