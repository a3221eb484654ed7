"""Nape host package: receive, record, analyse and report neck and upper-back motion.

Quaternions are always (w, x, y, z), sensor-to-world, world frame z up.
"""

__version__ = "0.1.0"
