"""Classifier training: the loop, losses, the synthetic filter, test evaluation and one matrix entry."""
