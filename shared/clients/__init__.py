"""The app's clients of the outside world; they import nothing else of shared/."""
