"""The catalog site and the read-only registry front door (Starlette, server-rendered
Jinja2 templates).
"""
