"""Shared pytest configuration for kiln's tests."""
