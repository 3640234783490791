"""Where items run: one small interface, one folder per implementation.

``local/`` runs items in long-lived worker processes of this machine. The engine drives a
backend only through the interface ``sources.LiveSource`` wraps, and imports none of a
backend's details.
"""
