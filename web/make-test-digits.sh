#!/bin/sh
# Writes the page's bundled sample of real MNIST test digits, web/assets/test-digits-*.gz: the
# first 100 digits of tests/fixtures/mnist/t10k-*.gz (which contains the first 256 test digits), with
# the item count in both IDX headers set to 100. gzip -n leaves out the name and time stamp, so
# running it again writes identical files. Run it from the repository root.
set -eu

count=100
source_dir=tests/fixtures/mnist
out_dir=web/assets
scratch=$(mktemp -d)
trap 'rm -r "$scratch"' EXIT

gzip -dc "$source_dir/t10k-images-idx3-ubyte.gz" > "$scratch/images"
gzip -dc "$source_dir/t10k-labels-idx1-ubyte.gz" > "$scratch/labels"

# IDX headers, big-endian: magic 0x803, count 100 (octal 144), 28 (octal 34) rows and columns.
{
  printf '\000\000\010\003\000\000\000\144\000\000\000\034\000\000\000\034'
  dd if="$scratch/images" bs=16 skip=1 count=$((count * 784 / 16)) status=none
} | gzip -9n > "$out_dir/test-digits-images-idx3-ubyte.gz"

# Labels: magic 0x801 and count 100, then one byte per digit.
{
  printf '\000\000\010\001\000\000\000\144'
  dd if="$scratch/labels" bs=4 skip=2 count=$((count / 4)) status=none
} | gzip -9n > "$out_dir/test-digits-labels-idx1-ubyte.gz"
