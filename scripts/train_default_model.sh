#!/usr/bin/env bash
# Rebuilds the VAE latent model shipped in gaussvae_ros/models/ (see its MODEL_CARD.md) from
# scratch: fitted Gaussians of real images, training through the renderer, the entropy model.
#   scripts/train_default_model.sh            (from the repository root, in the project's venv)
# Environment: DATA (training shards), OUT (runs), BAGS (the shared recordings), SHIP=0 to keep the
# shipped file untouched. About 1.5 h on the 2-core development machine (fitting ~20 min).
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

# 3. Two fine-tuning stages with the prototype's Delaunay artworks mixed in (no fitting needed):
#    3,000 steps with 750 of them, then 6,000 steps with 1,500 (the first 750 are the same).
#    The trainer reads every .npz below data.path, so each stage gets its own folder: hard links
#    of the fitted shards plus the artworks.
for count in 750 1500; do
  mix="$OUT/data_mix$count"
  rm -rf "$mix" && mkdir -p "$mix/delaunay" && cp -al "$DATA"/. "$mix"/
  gaussvae vae-dataset --count "$count" --seed 0 --output "$mix/delaunay/delaunay_$count.npz"
done
gaussvae train --config config/latent_default.yaml --output "$OUT/mix750" --init "$OUT/run/model.pt" \
  --set data.path="$OUT/data_mix750" --max-steps 3000
gaussvae train --config config/latent_default.yaml --output "$OUT/mix1500" --init "$OUT/mix750/model.pt" \
  --set data.path="$OUT/data_mix1500"

# 4. The entropy model on the last stage's training split, then the shipped file.
python -m gaussvae_ros.codecs.latent "$OUT/mix1500/model.pt" --params "$OUT/data_mix1500" --out "$OUT/latent.pt"
[ "${SHIP:-1}" = 0 ] || cp "$OUT/latent.pt" gaussvae_ros/models/gaussvae_latent_default.pt
# The shipped file's SHA-256 is pinned in gaussvae_ros/codecs/latent/model_registry.py
# (SHIPPED_MODEL_SHA256): a file that does not match it is refused on load.
[ "${SHIP:-1}" = 0 ] || echo "new SHIPPED_MODEL_SHA256: $(sha256sum gaussvae_ros/models/gaussvae_latent_default.pt | cut -d' ' -f1)"
