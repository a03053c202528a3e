"""micwatch's monitor: capture, decode, flows, devices, names, enrichment, events and the store.

Data flows one way: packets -> flow/device state -> events -> rules -> alerts -> store/notify.
"""

__version__ = "0.1.0"
