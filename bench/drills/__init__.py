"""`make drills`: fault drills against the real server (2 workers) on 127.0.0.1.

Each drill prints sent / acknowledged / persisted and PASS/FAIL; see __main__ for the list.
"""
