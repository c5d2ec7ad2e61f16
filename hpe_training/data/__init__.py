"""Training data: reading the VGGT-HPE on-disk layout, pair sampling, crops and augmentation."""
