"""Runs a command against a single-node Slurm started for it:
    local-slurm.py DIR -- COMMAND...
writes DIR/slurm.conf (localhost, free ports, no munge: auth/none, no
accounting), starts slurmctld and slurmd, waits until the node is idle, runs
COMMAND with SLURM_CONF set, and stops both daemons (by their pids) however
the command ends. Exits with the command's status."""
import os, signal, socket, subprocess, sys, time

d = os.path.abspath(sys.argv[1])
cmd = sys.argv[sys.argv.index("--") + 1:]
os.makedirs(os.path.join(d, "state"), exist_ok=True)
os.makedirs(os.path.join(d, "spool"), exist_ok=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


conf = os.path.join(d, "slurm.conf")
with open(conf, "w") as f:
    f.write("""ClusterName=qsimtest
SlurmctldHost=localhost
SlurmctldPort=%d
SlurmdPort=%d
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation=%s/state
SlurmdSpoolDir=%s/spool
SlurmctldPidFile=%s/slurmctld.pid
SlurmdPidFile=%s/slurmd.pid
SlurmctldLogFile=%s/slurmctld.log
SlurmdLogFile=%s/slurmd.log
SlurmUser=%s
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=localhost CPUs=%d State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""" % (free_port(), free_port(), d, d, d, d, d, d,
       __import__("pwd").getpwuid(os.getuid()).pw_name, os.cpu_count() or 1))
env = dict(os.environ, SLURM_CONF=conf)
procs = []
status = 1
try:
    procs.append(subprocess.Popen(["slurmctld", "-D", "-c", "-f", conf], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    procs.append(subprocess.Popen(["slurmd", "-D", "-f", conf], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 30
    while True:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() == "idle":
            break
        if time.time() > deadline:
            sys.stderr.write("local-slurm: the node did not become idle (see %s/*.log)\n" % d)
            sys.exit(1)
        time.sleep(0.2)
    status = subprocess.call(cmd, env=env)
finally:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
sys.exit(status)
