"""Errors the driver raises before ansible runs."""

from __future__ import annotations


class InvalidInput(ValueError):
    """Bad input or configuration (exit code 4); the message is meant for the user as is."""
