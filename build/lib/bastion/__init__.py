"""Bastion: a self-hosted authentication service for Python SaaS backends."""

__version__ = "0.1.0"
