"""The base layer: settings, errors, warehouse access, atomic writes, the log record schema and the ops tables.

Everything in StreamRec may import from here; nothing here imports from any other StreamRec layer.
"""
