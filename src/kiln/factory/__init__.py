"""The remediation loop: watch the archive and the feeds, reconcile each image to zero
known fixable CVEs, open pull requests with evidence (Temporal workflows).
"""
