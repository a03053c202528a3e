"""Protocol parsers for the few packets that need more than headers.

Each parser is a pure function over bytes: it returns a small dataclass, ``None`` when the bytes
are not the protocol, and raises :class:`monitor.errors.Malformed` when they are broken. No parser
keeps payload bytes beyond what its result names (metadata only).
"""
