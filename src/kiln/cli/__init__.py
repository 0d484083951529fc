"""Thin command-line adapters: parse arguments, call the pipeline, render the result."""
