"""The HTTP answers: what the routes show and accept."""
