#!/usr/bin/env bash
# Issue 31 item 2: beta-VAE at beta 1 or 4 (one seed) trained to the FactorVAE runs' length, scored
# every 10,000 steps by the run itself (`untwine train --score`: the numbers `untwine evaluate
# --metrics mig,gaussian_tc` gives for that step's checkpoint), one process per run, one torch thread.
# lr and batch as the 5,000-step rows of seeds_slides_cpu. Precision fp32 (those rows are bf16): auto
# keeps fp32 at beta 1 anyway (its MIG differed in bf16 while its rec and KL measured the same,
# precision_check), and bf16 runs ~9x slower than fp32 on a CPU without AVX512-BF16 (AMD EPYC family
# 25 model 1: 0.61 against 5.65 steps/s, two such runs side by side), where these runs started.
# Re-run the same line to continue: --resume picks up the run's last checkpoint (or starts it).
#   OMP_NUM_THREADS=1 bash docs/results/factor_vae_long/run_beta_vae.sh RUNS_ROOT BETA
set -euo pipefail
ROOT=${1:?usage: run_beta_vae.sh RUNS_ROOT BETA}; BETA=${2:?usage: run_beta_vae.sh RUNS_ROOT BETA}
UNTWINE=${UNTWINE:-untwine}
FINAL=${FINAL:-100000}
$UNTWINE train --dataset dsprites --model beta-vae --beta "$BETA" --lr 1e-3 --precision fp32 --seed 0 \
  --batch-size 64 --steps "$FINAL" --eval-every 10000 --checkpoint-every 2000 --threads 1 \
  --score mig,gaussian_tc --out "$ROOT/bvae_b$BETA" --resume
