"""The exported serving module: raw named inputs in, class probabilities, id and name out."""
import tensorflow as tf

from model.features import CLASSES, FEATURES

SIGNATURE_NAME = "serving_default"


def input_specs():
    """One named, typed, batch-shaped TensorSpec per feature."""
    return {f.name: tf.TensorSpec([None], tf.float32 if f.kind == "numeric" else tf.string,
                                  name=f.name)
            for f in FEATURES}


class ServingModule(tf.Module):
    """Preprocessing and network in one graph, so the signature takes what clients send."""

    def __init__(self, preprocessor, network):
        super().__init__(name="penguins")
        self.preprocessor = preprocessor
        self.network = network
        self.class_names = tf.constant(CLASSES)
        self.serve = tf.function(self._serve, input_signature=[input_specs()])
        # The tf.Variables the signature reads, tracked by this module itself, so the
        # SavedModel's saver restores them too: TF Serving restores through the saver, and a
        # Keras 3 network's variables reach only the object graph (keras-team/keras#20096).
        self.serving_variables = list(self.serve.get_concrete_function().variables)

    def _serve(self, features):
        probabilities = self.network(self.preprocessor(features), training=False)
        class_id = tf.argmax(probabilities, axis=1, output_type=tf.int64)
        return {"probabilities": probabilities, "class_id": class_id,
                "class_name": tf.gather(self.class_names, class_id)}

    def save(self, path):
        tf.saved_model.save(self, str(path), signatures={SIGNATURE_NAME: self.serve})
