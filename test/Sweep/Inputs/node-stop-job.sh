#!/bin/sh
# A studio job that ends cleanly on a stop's SIGTERM, as qsim-train does
# (studio-slurm-stop.test).
trap 'echo "node job: SIGTERM, clean exit"; exit 0' TERM
echo "node job: started"
while :; do sleep 0.1; done
