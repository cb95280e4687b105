"""The delivery core: what moves events and serves connections, below the domain apps.

`notifications` and `feeds` use it; it imports neither (tests/test_layers.py).
"""
