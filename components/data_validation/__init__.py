"""Data validation beyond one span: a curated schema, and a gate against the previous span."""
