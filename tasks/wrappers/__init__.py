"""Wrappers of installed EM programs (RELION, CTFFIND, MotionCor2, IMOD): command lines and output parsers."""
