"""The scripted model: a stand-in for Claude behind the Anthropic Messages API, served
on loopback for tests, benchmarks and ``clawrap serve --offline``.
"""
