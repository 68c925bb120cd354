"""Progressive delivery: the rollout reconciler and the `tfship rollout` commands.

Both are separate deployables that talk to the registry and the model servers over HTTP only;
nothing here imports the Flask app, the model pipeline or TensorFlow.
"""
