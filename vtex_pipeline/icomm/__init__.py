"""The icomm sink: client, field mapping and formats, delta against the last successful send, export."""
