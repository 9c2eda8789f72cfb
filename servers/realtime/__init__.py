"""Real-time application state: users, inboxes, rooms, topics, presence, activity.

Pure in-process state with no I/O; :mod:`servers.realtime.ops` exposes it as
hub operations that every transport carries the same way.
"""
