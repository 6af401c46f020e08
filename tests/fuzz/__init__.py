"""A structure-aware protocol fuzzer against a real server on loopback (see test_protocol_fuzz.py)."""
