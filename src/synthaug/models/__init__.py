"""Classifiers (HF ViT, small CNN, timm), their checkpoints, inference and cost profiles."""
