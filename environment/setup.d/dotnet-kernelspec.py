"""Rewrites the .net-csharp kernelspec that `dotnet-interactive jupyter install` writes (usage: SPEC TOOL).

- argv starts the pinned tool by its path (the tool writes the global-tool form, `dotnet interactive jupyter ...`);
- .NET Interactive's HTTP API listens on loopback only. It is on whatever the argv says (omitting --http-port-range
  still serves 2048-3000) and 1.0.712001 has no token for it, while Jupyter's own channels are HMAC-signed: on every
  interface it let anyone on the network list kernels, read variables and send commands through /kernelhub.
  --http-local-only binds it to 127.0.0.1; no notebook here needs it at all.
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
spec["argv"] = kept + ["--http-local-only"]
spec.setdefault("env", {}).update({"DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT": "1", "DOTNET_NOLOGO": "1"})
with open(path + ".tmp", "w") as f:
    json.dump(spec, f, indent=2)
os.replace(path + ".tmp", path)
