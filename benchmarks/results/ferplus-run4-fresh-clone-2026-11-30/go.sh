set -e
cd /tmp/run4/main
git log --oneline | head -1
grep -o 'avx512[a-z_]*\|avx2' /proc/cpuinfo | sort -u
date
make setup
time make default-bundle
date
