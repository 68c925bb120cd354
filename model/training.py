"""Build and fit the Keras classifier, and measure it on the held-out split."""
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from model.features import CLASSES, FEATURES


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of one training run; the defaults train a good model in seconds."""

    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 0.01
    hidden_units: int = 16
    seed: int = 0
    validation_fraction: float = 0.2


def as_tensors(split):
    """Raw columns of a split as the named tensors the signature takes."""
    tensors = {}
    for feature in FEATURES:
        dtype = tf.float32 if feature.kind == "numeric" else tf.string
        tensors[feature.name] = tf.constant(split.columns[feature.name], dtype=dtype)
    return tensors


def build_network(width, config):
    """A small multilayer perceptron over the preprocessed features, softmax over the classes."""
    inputs = keras.Input(shape=(width,), name="features")
    hidden = keras.layers.Dense(config.hidden_units, activation="relu")(inputs)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax")(hidden)
    network = keras.Model(inputs, outputs, name="penguin_classifier")
    network.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                    loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return network


def fit(network, preprocessor, train, config):
    """Fit on the training split; zero epochs leaves the network at its random initialisation."""
    keras.utils.set_random_seed(config.seed)
    x = preprocessor(as_tensors(train)).numpy()
    y = np.asarray(train.labels)
    if config.epochs > 0:
        network.fit(x, y, epochs=config.epochs, batch_size=config.batch_size, verbose=0,
                    shuffle=True)
    return network


def evaluate(probabilities, labels):
    """Accuracy and log loss of predicted class probabilities against true labels."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    predicted = probabilities.argmax(axis=1)
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)
    return {"accuracy": float((predicted == labels).mean()),
            "log_loss": float(-np.log(picked).mean())}
