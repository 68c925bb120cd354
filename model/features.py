"""The model's named features and classes: the one source of the input schema.

The exported signature, the metadata's input schema (which the gateway validates against and the
load tests generate payloads from) and the training data loader are all derived from this table.
"""
from dataclasses import dataclass

LABEL = "species"
CLASSES = ("Adelie", "Chinstrap", "Gentoo")
MISSING_TOKEN = "NA"  # how the CSV writes a missing value


@dataclass(frozen=True)
class Feature:
    """A named model input: numeric measurements are float32, categories are strings."""

    name: str
    kind: str  # "numeric" or "categorical"
    description: str

    @property
    def dtype(self):
        return "float32" if self.kind == "numeric" else "string"

    @property
    def missing(self):
        """What a client sends for a missing value: the NaN token, or the empty string."""
        return "NaN" if self.kind == "numeric" else ""


FEATURES = (
    Feature("island", "categorical", "Island in the Palmer Archipelago"),
    Feature("sex", "categorical", "Sex of the penguin"),
    Feature("bill_length_mm", "numeric", "Bill length in millimetres"),
    Feature("bill_depth_mm", "numeric", "Bill depth in millimetres"),
    Feature("flipper_length_mm", "numeric", "Flipper length in millimetres"),
    Feature("body_mass_g", "numeric", "Body mass in grams"),
)
NUMERIC = tuple(f for f in FEATURES if f.kind == "numeric")
CATEGORICAL = tuple(f for f in FEATURES if f.kind == "categorical")

OUTPUTS = {
    "probabilities": {"dtype": "float32", "shape": [-1, len(CLASSES)]},
    "class_id": {"dtype": "int64", "shape": [-1]},
    "class_name": {"dtype": "string", "shape": [-1]},
}


def input_schema(statistics, signature_name="serving_default"):
    """Describe the signature's inputs and outputs as data, with each category set from training."""
    inputs = {}
    for feature in FEATURES:
        spec = {"dtype": feature.dtype, "shape": [-1], "kind": feature.kind,
                "missing": feature.missing, "description": feature.description}
        if feature.kind == "categorical":
            spec["categories"] = sorted(statistics[feature.name]["categories"])
        inputs[feature.name] = spec
    return {"signature_name": signature_name, "inputs": inputs, "outputs": OUTPUTS,
            "classes": list(CLASSES)}
