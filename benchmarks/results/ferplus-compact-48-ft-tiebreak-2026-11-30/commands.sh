set -e
cd /work/main
R=runs/ferplus-compact-48-ft; R3=/tmp/run3/main/runs/ferplus-compact-48-ft
C=".venv/bin/affectlite convert --data ../shared/data/ferplus --format ferplus --ferplus-mode probability --holdout 0.1 --n 500 --logit-adjust"
$C --model $R/best.keras --mode float32 --out $R/float32-v4 > /tmp/v4-f32.log 2>&1
$C --model $R3/best.keras --mode int8 --out $R3/int8-v4 > /tmp/v4-r3.log 2>&1
$C --model $R3/best.keras --mode float32 --out $R3/float32-v4 > /tmp/v4-r3f.log 2>&1
E=".venv/bin/affectlite evaluate --data ../shared/data/ferplus --format ferplus --split val"
$E --model $R/int8-v4 --json $R/ferplus-valid-v4.json > /tmp/e1.log 2>&1
$E --model $R/float32-v4 --json $R/ferplus-valid-float32-v4.json > /tmp/e2.log 2>&1
$E --model $R3/int8-v4 --json $R3/ferplus-valid-v4.json > /tmp/e3.log 2>&1
$E --model $R3/float32-v4 --json $R3/ferplus-valid-float32-v4.json > /tmp/e4.log 2>&1
echo done
