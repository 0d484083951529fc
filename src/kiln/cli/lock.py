"""Commands about locks (filled in below)."""
