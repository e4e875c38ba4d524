"""Emotion bot platform: settings and the `emobot` command line shared by every process."""
