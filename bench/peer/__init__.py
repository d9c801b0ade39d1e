"""The peer: FastAPI-Users configured as its documentation's full SQLAlchemy example shows.

Runs only in bench/.venv-peer; fastapi-users is never a dependency of Bastion.
"""
