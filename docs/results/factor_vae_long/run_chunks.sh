#!/usr/bin/env bash
# Issue 31: FactorVAE at beta 1 (Kim & Mnih's loss) trained to 100,000 steps in 10,000-step chunks,
# runs taken in turn, every run evaluated after each chunk (MIG per factor, Gaussian TC; D(z_real),
# D(z_perm) and the discriminator's TC are the run's own val row at that step in metrics.jsonl).
# Re-run to continue: each run resumes from its last checkpoint; a finished chunk is skipped.
# (Item 2's beta-VAE runs: run_beta_vae.sh, where `untwine train --score` scores each chunk itself.)
#   OMP_NUM_THREADS=1 bash docs/results/factor_vae_long/run_chunks.sh RUNS_ROOT [RUN_NAME ...]
set -euo pipefail
ROOT=${1:?usage: run_chunks.sh RUNS_ROOT [RUN_NAME ...]}; shift
UNTWINE=${UNTWINE:-untwine}
FINAL=${FINAL:-100000}
CHUNK=10000
declare -A ARGS=(
  [km_s0]="--model factor-vae --lr 1e-4 --d-lr 1e-4 --gamma 35 --seed 0"   # Kim & Mnih 2018's dSprites settings
  [km_s1]="--model factor-vae --lr 1e-4 --d-lr 1e-4 --gamma 35 --seed 1"
  [cpu_s0]="--model factor-vae --lr 1e-3 --gamma 8 --seed 0"              # best CPU-scale setting so far (d_lr = lr)
  [cpu_s1]="--model factor-vae --lr 1e-3 --gamma 8 --seed 1"
)
NAMES=("$@"); [ ${#NAMES[@]} -gt 0 ] || NAMES=(km_s0 cpu_s0 km_s1 cpu_s1)
for ((target = CHUNK; target <= FINAL; target += CHUNK)); do
  for name in "${NAMES[@]}"; do
    R=$ROOT/$name
    if [ -z "${ARGS[$name]:-}" ]; then echo "unknown run $name; choose from: ${!ARGS[*]}" >&2; exit 2; fi
    if [ -f "$R/eval/mig_step$target.json" ]; then continue; fi
    if [ -f "$R/config.json" ]; then
      $UNTWINE train --out "$R" --resume --steps $target
    else
      $UNTWINE train --dataset dsprites ${ARGS[$name]} --batch-size 64 \
        --steps $target --eval-every $CHUNK --checkpoint-every 2000 --threads 1 --out "$R"
    fi
    mkdir -p "$R/eval"
    $UNTWINE evaluate "$R" --metrics mig,gaussian_tc --jobs 1 --no-progress --output "$R/eval/mig_step$target.json.tmp"
    mv "$R/eval/mig_step$target.json.tmp" "$R/eval/mig_step$target.json"
  done
done
