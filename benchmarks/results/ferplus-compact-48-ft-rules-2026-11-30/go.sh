set -e
cd /tmp/run3/main
git log --oneline | head -1
date
make setup
make -n default-bundle | sed -n '3,8p' > /tmp/run3/stage2-and-after.sh
cat /tmp/run3/stage2-and-after.sh
bash -e /tmp/run3/stage2-and-after.sh
date
