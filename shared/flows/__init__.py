"""The flows: what the app does with a blob, a message or an export."""
