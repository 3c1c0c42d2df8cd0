# -*- Python -*-
import os
import lit.formats
from lit.llvm import llvm_config

config.name = "qsim"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".cfg", ".test"]
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.qsim_obj_root, "test")

llvm_config.with_system_environment(["HOME", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

# Real models and data (../shared) are optional: tests that need them say
# `REQUIRES: models` / `REQUIRES: data` and are reported UNSUPPORTED (with
# the reason below) when the variables are unset.
models_dir = os.environ.get("QSIM_MODELS_DIR")
default_golden = (os.path.join(os.path.dirname(os.path.abspath(models_dir)), "golden")
                  if models_dir else None)
for var, feature in (("QSIM_MODELS_DIR", "models"), ("QSIM_DATA_DIR", "data"),
                     ("QSIM_GOLDEN_DIR", "golden")):
    value = os.environ.get(var) or (default_golden if feature == "golden" else None)
    if value and os.path.isdir(value):
        config.available_features.add(feature)
        config.environment[var] = value
        config.substitutions.append(("%" + feature, value))
    else:
        lit_config.note(var + " is not set: tests needing real " + feature +
                        " are skipped (UNSUPPORTED)")

# The Darknet model zoo (every cfg of AlexeyAB's cfg/ folder) under
# $QSIM_MODELS_DIR/zoo: the sweep test needs it.
if models_dir and os.path.isdir(os.path.join(models_dir, "zoo")):
    config.available_features.add("zoo")
else:
    lit_config.note("QSIM_MODELS_DIR/zoo not found: the Darknet zoo sweep "
                    "is skipped (UNSUPPORTED)")

# Device code: the deployment example is built with make and the host's C++
# compiler; ARM64 runs need the cross compiler and qemu-user (README's
# packages) and are UNSUPPORTED without them.
import shutil
config.substitutions.append(("%deploy_example",
                             os.path.join(config.qsim_src_root, "examples", "arm-deploy")))
config.substitutions.append(("%qsim_src", config.qsim_src_root))
if shutil.which("make") and shutil.which("g++") and shutil.which("gcc"):
    config.available_features.add("host-cxx")
if shutil.which("aarch64-linux-gnu-g++") and shutil.which("qemu-aarch64"):
    config.available_features.add("aarch64-cross")
else:
    lit_config.note("aarch64-linux-gnu-g++ or qemu-aarch64 missing: ARM64 "
                    "deployment tests are skipped (UNSUPPORTED)")

# A single-node Slurm started by the test itself (test/Sweep): needs the
# Debian slurm-wlm binaries.
if all(shutil.which(t) for t in ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo")):
    config.available_features.add("slurm")
else:
    lit_config.note("slurmctld/slurmd/sbatch missing: the real-Slurm sweep "
                    "test is skipped (UNSUPPORTED); the stand-in Slurm test runs")
# qsim-train exists when the build found libtorch (QSIM_ENABLE_TRAIN).
if getattr(config, "qsim_have_torch", False):
    config.available_features.add("train")
else:
    lit_config.note("qsim-train is not built (no libtorch): training tests "
                    "are skipped (UNSUPPORTED)")

config.substitutions.append(("%PYTHON", config.python_executable))
# Synthetic test images (PPM), shared by every test folder.
config.substitutions.append(("%make_image", config.python_executable + " " +
                             os.path.join(config.test_source_root, "Inputs", "make-image.py")))
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.qsim_tools_dir, append_path=True)
