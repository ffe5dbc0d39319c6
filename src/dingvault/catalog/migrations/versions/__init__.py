"""Catalog schema revisions (one module per revision; frozen once released)."""
