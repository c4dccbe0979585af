"""Helpers shared by several test packages: real server processes and seeding PostgreSQL like the pipeline."""
