"""The custom properties the pusher records on its PushedModel.

The first three are those TFX's own Pusher sets; the run summary reads them.
"""

PUSHED = "pushed"
PUSHED_DESTINATION = "pushed_destination"
PUSHED_VERSION = "pushed_version"
NOT_PUSHED_BECAUSE = "not_pushed_because"  # ours: why nothing was pushed ('' when it was)
PUSHED_TFLITE = "pushed_tflite"  # ours: JSON {format: path inside the version} of TFLite models
