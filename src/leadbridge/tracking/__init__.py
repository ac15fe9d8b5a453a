"""Tracking intake: the Matomo protocol, the native JSON API, the email pixel, group commit."""
