"""Bastion's benchmark: figures reported as ratios to ceilings measured in the same run."""
