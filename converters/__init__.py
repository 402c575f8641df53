"""Readers and writers of EM package file formats (installed as ``scipion_kg.converters``)."""
