"""emotrack: live music emotion tracking in valence-arousal space.

Public API::

    import emotrack
    model = emotrack.load_model()          # the shipped VAE-LSTM (ONNX)
    tracker = emotrack.Tracker(model, sample_rate=44100)
    for p in tracker.push(block):          # any block size, any channel count
        print(p.t, p.valence, p.arousal)
"""

from emotrack.realtime.config import FEATURES, FeatureConfig
from emotrack.realtime.model import EmotionModel, load_model
from emotrack.realtime.pipeline import Prediction, Tracker, stream_file

__version__ = "0.1.0"
__all__ = ["FEATURES", "FeatureConfig", "EmotionModel", "Prediction", "Tracker", "load_model",
           "stream_file", "__version__"]
