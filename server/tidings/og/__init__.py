"""Link previews (Stream's og/): a bounded fetch of a page, guarded against requests to this
side of the network, and its Open Graph data (domain/og.py)."""
