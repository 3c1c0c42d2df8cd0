"""stop-when-running.py COMMAND...: runs a Slurm job supervisor (qsim-studio
--slurm-job), copying its stderr to ours, and stops it as the studio does
(SIGTERM) once it has reported the job RUNNING and the job has said
"started". Exits with the supervisor's status."""
import signal, subprocess, sys

p = subprocess.Popen(sys.argv[1:], stderr=subprocess.PIPE, text=True)
running = started = stopped = False
for line in p.stderr:
    sys.stderr.write(line)
    sys.stderr.flush()
    running = running or line.rstrip().endswith(" RUNNING")
    started = started or "node job: started" in line
    if running and started and not stopped:
        p.send_signal(signal.SIGTERM)
        stopped = True
sys.exit(p.wait())
