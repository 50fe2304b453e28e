"""Synthetic image sets on disk: the per-class plan (how many images, which seeds) and the sharded store that the
synthesize stage writes and the train and fid stages read."""
