"""Bastion's hosted pages: sign in and up, the pages email links open, and the account."""
