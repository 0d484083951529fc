"""Commands about image specs (filled in below)."""
