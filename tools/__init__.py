# SPDX-License-Identifier: GPL-3.0-or-later
"""Developer tools (not shipped in the extension zip)."""
