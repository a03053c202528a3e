"""Exceptions shared across the monitor.

Guarantee: every parser in :mod:`monitor.protocols` signals bad input by raising
:class:`Malformed` (or returning ``None`` for "not this protocol"); the pipeline counts a
``Malformed`` packet and moves on, so no packet can stop the capture loop.
"""


class MicwatchError(Exception):
    """Base class for errors micwatch reports to the user in plain words."""


class Malformed(ValueError):
    """Raised by a decoder or protocol parser when the bytes cannot be what they claim to be."""


class ConfigError(MicwatchError):
    """A configuration value is invalid; the message names the option and what it accepts."""


class CaptureError(MicwatchError):
    """A capture source cannot be opened or read (bad file, unknown format, no permission)."""


class StoreError(MicwatchError):
    """The store cannot be opened (unwritable state directory, unreadable database file)."""
