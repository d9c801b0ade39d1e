"""The fault drill: Bastion under load while its dependencies fail (drill/README.md)."""
