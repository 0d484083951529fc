"""Hostile-input tests: each case of the campaign (issue 13) as a test, and fuzzing."""
