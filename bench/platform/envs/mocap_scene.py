"""The MJCF of bench's low-poly insertion scenes: a table, what stands on it, and a gripper under Cartesian position control.

The gripper is a free body welded to a mocap target that actions move: a soft constraint, so contacts
push back on it as on a compliant arm. 2 ms physics steps, one light from above, no shadows (shadows
cost ~30x when rendering with llvmpipe).
"""

from __future__ import annotations


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
