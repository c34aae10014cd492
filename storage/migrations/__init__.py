"""Alembic migrations of the SQL catalog, shipped as package data (run by ``Catalog.upgrade``)."""
