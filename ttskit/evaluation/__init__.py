"""Objective measurements of synthetic speech."""
