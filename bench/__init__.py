"""Bastion's benchmark: throughput and latency reported as ratios to ceilings measured in the same run."""
