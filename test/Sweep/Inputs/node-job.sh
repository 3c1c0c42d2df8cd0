#!/bin/sh
# A studio job's command as a Slurm node runs it (studio-slurm-job.test).
echo "from the node: $(pwd)"
exit 3
