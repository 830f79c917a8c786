"""Sessions: conversations kept in SQLite across requests and restarts, with their
locks and expiry. Nothing here imports the HTTP layer.
"""
