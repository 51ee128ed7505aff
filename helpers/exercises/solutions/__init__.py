"""Reference solutions of the exercises, one module per notebook.

The notebooks show the same code in hidden cells (tag ``solution``); the tests run these.
"""
