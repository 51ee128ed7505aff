"""Helpers for the socket programming course: `from helpers import netlab`."""
