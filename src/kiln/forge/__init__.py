"""Pull requests behind one interface: the local git forge (the default) and the GitHub,
GitLab and Forgejo REST adapters; the evidence a reviewer reads.
"""
