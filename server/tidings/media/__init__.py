"""Uploaded files and images (Stream's files/ and images/): bounds, ownership, processing."""
