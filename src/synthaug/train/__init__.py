"""The classifier training loop, losses, test evaluation, one matrix entry, and HPO."""
