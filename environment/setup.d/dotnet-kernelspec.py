"""Rewrites the .net-csharp kernelspec that `dotnet-interactive jupyter install` writes (usage: SPEC TOOL).

- argv starts the pinned tool by its path (the tool writes the global-tool form, `dotnet interactive jupyter ...`);
- .NET Interactive's HTTP API listens on loopback only. It is on whatever the argv says (omitting --http-port-range
  still serves 2048-3000) and 1.0.712001 has no token for it, while Jupyter's own channels are HMAC-signed: on every
  interface it let anyone on the network list kernels, read variables and send commands through /kernelhub.
  --http-local-only binds it to 127.0.0.1; no notebook here needs it at all.
- the HTTP API's port: the tool takes the first port of its range that a probe finds free and binds it only later, so
  kernels that start together pick the same port and all but one die ("address already in use"; seen in CI, where
  tests start .NET Interactive kernels side by side, and a user who opens two notebooks at once meets the same). argv
  runs the tool through /bin/sh, which execs it (the kernel keeps the shell's pid, so Jupyter's signals reach it) with
  a range that starts at 2048 + pid mod 900: kernels started together start their probes at different ports.
- env turns off the tool's telemetry and first-run banner: this machine has no network to send it to, and a kernel
  started in a home that never ran a .NET tool would otherwise begin with the first-run work.
"""
import json, os, sys

path, tool = sys.argv[1], sys.argv[2]
with open(path) as f:
    spec = json.load(f)
argv = spec["argv"]
if argv[:2] == ["dotnet", "interactive"]:
    argv = [tool] + argv[2:]
assert argv[0] == tool and argv[1] == "jupyter", argv
kept, skip = [], False
for arg in argv:
    if skip:
        skip = False
    elif arg in ("--http-port-range", "--http-port"):
        skip = True  # and its value
    elif arg != "--http-local-only":
        kept.append(arg)
# "$0" is the tool, "$@" the rest of argv; $$ is the shell's pid, which exec hands to the tool.
script = 'exec "$0" "$@" --http-port-range "$((2048 + $$ % 900))-3000"'
spec["argv"] = ["/bin/sh", "-c", script] + kept + ["--http-local-only"]
spec.setdefault("env", {}).update({"DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT": "1", "DOTNET_NOLOGO": "1"})
with open(path + ".tmp", "w") as f:
    json.dump(spec, f, indent=2)
os.replace(path + ".tmp", path)
