"""Example pipelines for the bass builder, shipped as package data (see README.md)."""
