#!/usr/bin/env bash
# Rebuilds the VAE latent model shipped in gaussvae_ros/models/ (see its MODEL_CARD.md) from
# scratch: fitted Gaussians of real images, training through the renderer, the entropy model.
#   scripts/train_default_model.sh            (from the repository root, in the project's venv)
# Environment: DATA (training shards), OUT (runs), BAGS (the shared recordings), SHIP=0 to keep the
# shipped file untouched. About 1 h on the 2-core development machine (fitting ~20 min).
set -euo pipefail
DATA=${DATA:-experiments/data/real192}
OUT=${OUT:-experiments/latent_default}
BAGS=${BAGS:-../shared/data/bags}
FIT=(--long-side 192 --max-iters 150)

# 1. Training data: 640 views of scikit-image's colour photographs (two processes, one per core)
#    and frames of the robot recordings, all fitted with 512 Gaussians at long side 192 (resumable).
gaussvae dataset from-photos --count 320 --seed 0 "${FIT[@]}" --out "$DATA/photos_s0" &
gaussvae dataset from-photos --count 320 --seed 1 "${FIT[@]}" --out "$DATA/photos_s1" &
wait
if [ -d "$BAGS" ]; then
  gaussvae dataset from-bag "$BAGS/kitti07_mono8_mcap" --every 2 "${FIT[@]}" --out "$DATA/kitti"
  gaussvae dataset from-bag "$BAGS/euroc_v101_static_sqlite3" --every 3 "${FIT[@]}" --out "$DATA/euroc"
  gaussvae dataset from-bag "$BAGS/t265_fisheye_mcap" "${FIT[@]}" --out "$DATA/t265"
fi

# 2. Training through the renderer (config/latent_default.yaml: 6,000 steps, ~15 min).
gaussvae train --config config/latent_default.yaml --output "$OUT/run" --set data.path="$DATA"

# 3. The entropy model on the training split, then the shipped file.
python -m gaussvae_ros.vae.latent_codec "$OUT/run/model.pt" --params "$DATA" --out "$OUT/latent.pt"
[ "${SHIP:-1}" = 0 ] || cp "$OUT/latent.pt" gaussvae_ros/models/gaussvae_latent_default.pt
