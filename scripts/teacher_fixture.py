"""Make tests/fixtures/musicnn_tf.npz: musicnn's own TensorFlow graph on a few patches of
real audio, the reference that tests/models/test_teachers.py holds the torch port to.

Run once, in a throw-away venv (TensorFlow is never a dependency of emotrack):

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install 'tensorflow-cpu==2.21.*' 'tf-keras==2.21.*' librosa==0.11.0 soundfile
    /tmp/tfvenv/bin/pip install --no-deps musicnn==0.1.0
    TF_USE_LEGACY_KERAS=1 /tmp/tfvenv/bin/python scripts/teacher_fixture.py assets/demo.opus

It takes 4 s of the audio at 16 kHz (stored as int16, so the test reads exactly what TF
saw), computes musicnn's spectrogram (with the float16 cast *before* the log, see
emotrack.models.teachers), cuts three 187-frame patches and stores, for MSD_musicnn and
MTT_musicnn, TF's logits, penultimate layer and mean pool.

With ``--vgg`` it writes tests/fixtures/musicnn_vgg_tf.npz instead: the same audio and
patches through MSD_vgg and MTT_vgg (TF's logits, flattened last pool and fourth pool),
the reference for :func:`emotrack.models.teachers.load_vgg`:

    TF_USE_LEGACY_KERAS=1 /tmp/tfvenv/bin/python scripts/teacher_fixture.py --vgg assets/demo.opus
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import musicnn  # noqa: E402
import tensorflow as tf  # noqa: E402
from musicnn import models  # noqa: E402

tf.compat.v1.disable_eager_execution()
SECONDS, START = 4.0, 20.0



def spectrogram(y: np.ndarray) -> np.ndarray:
    m = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    m = m.astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000) * m + np.float32(1), dtype=np.float32)


def run(model: str, patches: np.ndarray) -> dict[str, np.ndarray]:
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
        is_training = tf.compat.v1.placeholder(tf.bool)
        y, _, _, _, _, _, mean_pool, _, pen = models.define_model(x, is_training, model, 50)
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(sess, os.path.dirname(musicnn.__file__) + "/" + model + "/")
    logits, penult, mp = sess.run([y, pen, mean_pool], feed_dict={x: patches, is_training: False})
    return {f"{model}_logits": logits, f"{model}_penultimate": penult, f"{model}_mean_pool": mp}


def run_vgg(model: str, patches: np.ndarray) -> dict[str, np.ndarray]:
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
        is_training = tf.compat.v1.placeholder(tf.bool)
        y, _, _, _, pool4, pool5 = models.define_model(x, is_training, model, 50)
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(sess, os.path.dirname(musicnn.__file__) + "/" + model + "/")
    logits, p4, p5 = sess.run([y, pool4, tf.compat.v1.layers.flatten(pool5)], feed_dict={x: patches, is_training: False})
    return {f"{model}_logits": logits, f"{model}_pool5": p5, f"{model}_pool4": p4}  # pool4 NHWC


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--vgg"]
    vgg = "--vgg" in sys.argv[1:]
    src = Path(args[0] if args else "assets/demo.opus")
    y, sr = sf.read(str(src), dtype="float32", always_2d=True)
    y = y.mean(1)[int(START * sr):int((START + SECONDS) * sr)]
    y16 = librosa.resample(y, orig_sr=sr, target_sr=16000)
    audio = np.clip(np.round(y16 * 32767), -32768, 32767).astype(np.int16)
    spec = spectrogram(audio.astype(np.float32) / 32767)
    starts = np.array([0, 20, len(spec) - 187])
    patches = np.stack([spec[s:s + 187] for s in starts])
    out = {"audio_int16": audio, "starts": starts, "tensorflow": np.array(tf.__version__)}
    for model in ("MSD_vgg", "MTT_vgg") if vgg else ("MSD_musicnn", "MTT_musicnn"):
        out.update((run_vgg if vgg else run)(model, patches))
    name = "musicnn_vgg_tf.npz" if vgg else "musicnn_tf.npz"
    dest = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dest, **out)
    print(f"wrote {dest} ({dest.stat().st_size} bytes), TF {tf.__version__}, patches at {starts.tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
