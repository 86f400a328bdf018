"""The HTTP answers: what each route shows or accepts."""
