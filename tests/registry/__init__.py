"""Tests for kiln.registry."""
