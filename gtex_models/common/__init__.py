"""What every layer shares: atomic file writes, message helpers, choice lists, progress callbacks, schema validation.

Imports nothing else from the package.
"""
