"""The custom properties ModelLoadCheck records on its InfraBlessing.

`blessed` is what TFX's InfraValidator writes, so TFX's Pusher and `is_infra_validated` agree.
"""

BLESSED = "blessed"
REASON = "reason"  # ours: why the model was not blessed ('' when it was)
