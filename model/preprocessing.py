"""Turn raw feature values into the network's dense input, inside the TensorFlow graph.

The same module is used to prepare training data and inside the exported signature, so
clients send raw values and there is one definition of every transformation:
- a missing number (NaN) is imputed with the training mean, and a 0/1 missing indicator is added;
- numbers are standardised with the training mean and standard deviation;
- categories are one-hot encoded over the training vocabulary plus one bucket that holds both a
  missing value ("") and any category never seen in training.
"""
import tensorflow as tf

from model.features import CATEGORICAL, NUMERIC


class Preprocessor(tf.Module):
    """Raw named columns in, one float32 matrix out; constants come from training statistics."""

    def __init__(self, stats, name="preprocessor"):
        super().__init__(name=name)
        self.means = {f.name: tf.constant(stats[f.name]["mean"], tf.float32) for f in NUMERIC}
        self.stds = {f.name: tf.constant(stats[f.name]["std"], tf.float32) for f in NUMERIC}
        self.vocabularies = {f.name: sorted(stats[f.name]["categories"]) for f in CATEGORICAL}
        self.tables = {
            name: tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(vocab), tf.range(len(vocab), dtype=tf.int64)),
                default_value=tf.constant(len(vocab), tf.int64))
            for name, vocab in self.vocabularies.items()
        }

    @property
    def width(self):
        """Columns of the dense output: value + indicator per number, vocab + 1 per category."""
        return 2 * len(NUMERIC) + sum(len(v) + 1 for v in self.vocabularies.values())

    def __call__(self, features):
        parts = []
        for feature in NUMERIC:
            raw = tf.cast(features[feature.name], tf.float32)
            missing = tf.math.is_nan(raw)
            filled = tf.where(missing, self.means[feature.name], raw)
            parts.append((filled - self.means[feature.name]) / self.stds[feature.name])
            parts.append(tf.cast(missing, tf.float32))
        columns = [tf.stack(parts, axis=1)]
        for feature in CATEGORICAL:
            ids = self.tables[feature.name].lookup(features[feature.name])
            columns.append(tf.one_hot(ids, len(self.vocabularies[feature.name]) + 1, dtype=tf.float32))
        return tf.concat(columns, axis=1)
