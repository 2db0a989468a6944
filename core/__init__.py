"""Domain types, errors, time and configuration primitives shared by every package.

`core` imports nothing else from the project (checked by the import-linter contract in
pyproject.toml)."""
