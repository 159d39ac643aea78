"""The tabletop's privileged state vector and motion constants: what the environment and its scripted primitives share.

A leaf module, so that the environment (tabletop.py) can use the primitives (tabletop_primitives.py)
and the primitives can read the state without either importing the other.
"""

from __future__ import annotations

# The privileged state vector, by slice.
GRIP, OPEN, OBJECT, DRAWER, BUTTON = slice(0, 3), 3, slice(4, 7), 7, 8
HANDLE, BUTTON_XY, TRAY_XY, PRESENT = slice(9, 12), slice(12, 14), slice(14, 16), slice(16, 20)
STATE_DIM = 20  # present = (drawer, button, tray, object)

STEP = 0.02  # metres the gripper moves per step at full action
DRAWER_TRAVEL = 0.12
