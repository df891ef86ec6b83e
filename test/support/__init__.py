"""Helpers shared by the tests of several rooms (not collected: no test_ prefix)."""
