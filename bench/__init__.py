# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmarks: each prints a ratio against a baseline measured in the same process."""
