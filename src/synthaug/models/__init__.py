"""Classifiers (HF ViT, small CNN, timm) and, later, generators."""
