#!/bin/bash
cd /work/main
for k in 1 2; do
  for v in none coop; do
    GLOMMIO_RING_FLAGS=$v RUNS=mra OUT=/tmp/mra-ab-$v-$k scripts/storm.sh > /tmp/mra-ab-$v-$k.log 2>&1
    echo "$k $v $(grep -E 'CPU limit|registrar: CPU' /tmp/mra-ab-$v-$k/summary.md | sed 's/admission.*//' | tr '\n' ' ')"
  done
done
