"""bench's low-poly insertion scenes: their MJCF (a table, what stands on it, a gripper under Cartesian position
control) and the P-controller that drives such a gripper (eq. 29).

The gripper is a free body welded to a mocap target that actions move: a soft constraint, so contacts
push back on it as on a compliant arm. 2 ms physics steps, one light from above, no shadows (shadows
cost ~30x when rendering with llvmpipe).
"""

from __future__ import annotations

import numpy as np

P_GAINS = (1.0, 1.0, 0.3)  # ch. 6.4.3's k_p: align quickly, descend slowly


def p_control(x: np.ndarray, target: np.ndarray, gains: tuple[float, ...] = P_GAINS, step: float = 1.0) -> np.ndarray:
    """Eq. 29, u = -k_p (x - x*), with the position error counted in action units (``step`` metres of motion
    per unit of action), clipped to [-1, 1]."""
    error = (np.asarray(x, np.float64) - np.asarray(target, np.float64)) / step
    return np.clip(-np.asarray(gains, np.float64) * error, -1.0, 1.0)


def mocap_gripper_scene(model: str, table: str, start: float, gripper: str, scenery: str = "",
                        weld: str = 'solref="0.02 1"') -> str:
    """An MJCF document: ``table`` (a plane's attributes), ``scenery`` (bodies or geoms on it), and the gripper
    body with the geoms ``gripper`` starting at height ``start``, welded to its mocap target with ``weld``."""
    return f"""
<mujoco model="{model}">
  <option timestep="0.002" gravity="0 0 -9.81"/>
  <visual><quality shadowsize="0"/></visual>
  <worldbody>
    <light pos="0 0 1" dir="0 0 -1" castshadow="false"/>
    <geom name="table" type="plane" {table}/>
    <body name="target" mocap="true" pos="0 0 {start}"/>
    <body name="gripper" pos="0 0 {start}">
      <freejoint name="gripper"/>
      {gripper}
    </body>
    {scenery}
  </worldbody>
  <equality>
    <weld body1="target" body2="gripper" {weld}/>
  </equality>
</mujoco>"""
