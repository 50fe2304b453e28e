"""Classifiers (HF ViT, small CNN, timm), their checkpoints and inference."""
