#!/usr/bin/env bash
# The TensorFlow/Keras side of `make bench-keras` (scripts/bench_keras.py): a separate venv, `.venv-tf` by default
# (git-ignored), with the CPU TensorFlow, h5py and NumPy only. The umsi venv never imports TensorFlow.
# Usage: scripts/make_tf_venv.sh [VENV]   (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail
venv=${1:-.venv-tf}
python=${PYTHON:-python3}
tf_version=${TF_VERSION:-2.21.0}
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import tensorflow, h5py" 2>/dev/null; then
  echo "$venv: TensorFlow $("$venv/bin/python" -c 'import tensorflow as tf; print(tf.__version__)') already installed"
  exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# tensorflow-cpu is the same build without the CUDA wheels (about 250 MB instead of several GB).
"$venv/bin/python" -m pip install --quiet "tensorflow-cpu==$tf_version" "h5py>=3.8" || \
  "$venv/bin/python" -m pip install --quiet "tensorflow==$tf_version" "h5py>=3.8"
"$venv/bin/python" -c "import tensorflow as tf; print('$venv: TensorFlow', tf.__version__)"
