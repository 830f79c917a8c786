"""The one owner of Claude Code CLI processes: spawning, warming, reusing, parking,
counting and reaping them, and stopping a process tree.
"""
