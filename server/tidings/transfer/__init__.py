"""`tidings import` and `tidings export`: an app's data in and out, as NDJSON in the shapes
Stream's API answers (records.py), written in bulk (importer.py), resumable (files.py)."""
