# SPDX-License-Identifier: GPL-3.0-or-later
"""Camera moves over a shot's frame range, as per-frame keys with easing. Pure Python."""

MOVES = (
    ("STATIC", "Static", "Locked-off camera"),
    ("PAN", "Pan", "Rotate left/right on the spot"),
    ("TILT", "Tilt", "Rotate up/down on the spot"),
    ("DOLLY_IN", "Dolly in", "Travel toward the subject"),
    ("DOLLY_OUT", "Dolly out", "Travel away from the subject"),
    ("TRUCK", "Truck", "Travel sideways, parallel to the subject"),
    ("ORBIT", "Orbit", "Circle around the subject, keeping it framed"),
    ("CRANE", "Crane", "Rise (or fall) while keeping the subject framed"),
    ("ZOOM", "Zoom", "Change the focal length on the spot"),
)

EASINGS = (
    ("LINEAR", "Linear", "Constant speed"),
    ("EASE_IN", "Ease in", "Start slow"),
    ("EASE_OUT", "Ease out", "End slow"),
    ("EASE_IN_OUT", "Ease in and out", "Start and end slow"),
)
