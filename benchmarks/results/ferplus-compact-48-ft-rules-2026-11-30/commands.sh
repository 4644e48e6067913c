.venv/bin/affectlite train --data ../shared/data/ferplus --format ferplus --ferplus-mode probability --holdout 0.1 --backbone compact --input-size 48 --weights none --batch-size 256 --weight-decay 0.05 --label-smoothing 0.05 --mixed-precision off --init runs/ferplus-compact-48/best.keras --epochs 22 \
  --learning-rate 0.0008 --balance sqrt --dropout 0.3 --out runs/ferplus-compact-48-ft
.venv/bin/affectlite convert --model runs/ferplus-compact-48-ft/best.keras --mode int8 --data ../shared/data/ferplus --format ferplus --ferplus-mode probability --holdout 0.1 --n 500 \
  --logit-adjust --out runs/ferplus-compact-48-ft/int8
.venv/bin/affectlite evaluate --model runs/ferplus-compact-48-ft/int8 --data ../shared/data/ferplus --format ferplus --split val \
  --json runs/ferplus-compact-48-ft/ferplus-valid.json
