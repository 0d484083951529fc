"""The research agent: find the upstream commit that fixes a CVE, rank the candidates,
decide whether the stable source is affected, backport it.
"""
