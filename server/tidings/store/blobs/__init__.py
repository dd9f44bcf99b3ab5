"""Blob stores of uploaded files and images (domain.ports.BlobStore): GridFS in the MongoDB of
the feeds (the default: one node needs nothing more), or an S3-compatible bucket."""
