"""Tests for kiln.attest."""
