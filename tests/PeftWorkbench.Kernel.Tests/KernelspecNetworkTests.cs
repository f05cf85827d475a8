using System.Net;
using System.Net.Sockets;
using PeftWorkbench.Fuzz;
using Xunit.Abstractions;

namespace PeftWorkbench.Kernel.Tests;

/// <summary>
/// Issue 26 item 9a: the `.net-csharp` kernelspec that environment/setup.d/interactive.sh registers. Written here into a
/// private folder by the real tool and rewritten by the same script setup runs (dotnet-kernelspec.py), the kernel is
/// started from its argv inside a network namespace of its own with a non-loopback address (10.99.0.1, on a dummy interface or lo): it must run a cell,
/// and none of its ports may answer on the dummy address (before, its HTTP API listened on every interface, no token).
/// Needs root (unshare -n) and the pinned tool in the data cache; otherwise it says why and checks nothing.
/// </summary>
public class KernelspecNetworkTests(ITestOutputHelper output)
{
    const string ToolVersion = "1.0.712001";

    static string Tool => Path.Combine(Environment.GetEnvironmentVariable("PEFT_DATA") is { Length: > 0 } d ? d
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "peft-workbench"), "tools", $"dotnet-interactive-{ToolVersion}", "dotnet-interactive");

    static int FreePort() { var l = new TcpListener(IPAddress.Loopback, 0); l.Start(); int p = ((IPEndPoint)l.LocalEndpoint).Port; l.Stop(); return p; }

    const string Cell = """
        import sys, jupyter_client
        c = jupyter_client.BlockingKernelClient()
        c.load_connection_file(sys.argv[1])
        c.start_channels()
        c.wait_for_ready(timeout=300)
        def hook(m):
            if m["msg_type"] in ("execute_result", "display_data"): print("result", " ".join(str(v) for v in m["content"]["data"].values()))
        reply = c.execute_interactive("1 + 41", timeout=300, output_hook=hook)
        print("status", reply["content"]["status"])
        """;

    const string Inner = """
        set -uo pipefail
        D="$1"
        ip link set lo up
        # A non-loopback address: on a dummy interface, or (no dummy module) on lo itself.
        { ip link add dummy0 type dummy && ip addr add 10.99.0.1/24 dev dummy0 && ip link set dummy0 up; } 2>/dev/null || ip addr add 10.99.0.1/32 dev lo
        mapfile -d '' argv < <(/usr/bin/python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["argv"]; sys.stdout.write("".join(x.replace("{connection_file}", sys.argv[2]) + "\0" for x in a))' "$D/kernels/.net-csharp/kernel.json" "$D/conn.json")
        "${argv[@]}" > "$D/kernel.log" 2>&1 &
        pid=$!
        shell=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["shell_port"])' "$D/conn.json")
        for i in $(seq 300); do ss -ltnH | grep -q ":$shell\b" && break; sleep 1; done
        /usr/bin/python3 "$D/cell.py" "$D/conn.json" > "$D/cell.out" 2>&1
        sleep 2  # the HTTP API starts beside the Jupyter channels
        ss -ltnH > "$D/listening.txt"
        for port in $(ss -ltnH | awk '{print $4}' | sed 's/.*://' | sort -u); do
            if timeout 3 bash -c "exec 3<>/dev/tcp/10.99.0.1/$port" 2>/dev/null; then echo "$port" >> "$D/answers.txt"; fi
        done
        kill "$pid"; wait "$pid" 2>/dev/null
        exit 0
        """;

    /// <summary>The kernelspec as setup writes it: by the real tool into DIR/kernels, rewritten by dotnet-kernelspec.py.</summary>
    static void WriteKernelspec(string dir)
    {
        Directory.CreateDirectory(Path.Combine(dir, "kernels"));
        var install = Tools.Run(Tool, new[] { "jupyter", "install", "--path", Path.Combine(dir, "kernels") }, timeoutSeconds: 120);
        Assert.True(install.Code == 0, install.Stderr);
        var rewrite = Tools.Run("/usr/bin/python3", new[] { Path.Combine(Tools.RepoRoot, "environment", "setup.d", "dotnet-kernelspec.py"), Path.Combine(dir, "kernels", ".net-csharp", "kernel.json"), Tool }, timeoutSeconds: 60);
        Assert.True(rewrite.Code == 0, rewrite.Stderr);
    }

    /// <summary>Three kernels started by Jupyter's client at once, each running a cell and still alive two seconds later.</summary>
    const string Together = """
        import subprocess, sys, threading, time
        from jupyter_client.manager import KernelManager
        n, logs = int(sys.argv[1]), sys.argv[2]
        results = {}
        def one(i):
            km = KernelManager(kernel_name=".net-csharp")
            try:
                km.start_kernel(stdout=open(f"{logs}/kernel{i}.log", "w"), stderr=subprocess.STDOUT)
                kc = km.client()
                kc.start_channels()
                try:
                    kc.wait_for_ready(timeout=300)
                    reply = kc.execute_interactive("1 + 41", timeout=120)
                    time.sleep(2)  # the HTTP API binds after the Jupyter channels answer
                    results[i] = f"{reply['content']['status']} alive={km.is_alive()}"
                except Exception as e:
                    results[i] = f"{type(e).__name__}: {e}"[:200]
                finally:
                    kc.stop_channels()
            finally:
                km.shutdown_kernel(now=True)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads: t.start()
        for t in threads: t.join()
        for i in range(n): print(f"kernel {i}: {results.get(i)}")
        """;

    /// <summary>The tool probes for the first free port of its HTTP range and binds it later, so kernels started
    /// together used to pick one port and all but one died ("address already in use": CI, where test classes start
    /// kernels side by side, and a user opening two notebooks at once). The kernelspec starts each at its own port.</summary>
    [Fact]
    public void DotNetKernelsStartedTogetherAllRunACellAndStayAlive()
    {
        if (!File.Exists(Tool)) { output.WriteLine($"not checked: {Tool} is missing (environment/setup.d/interactive.sh installs it)"); return; }
        using var temp = new TempDir();
        WriteKernelspec(temp.Path);
        File.WriteAllText(Path.Combine(temp.Path, "together.py"), Together);
        var run = Tools.Run("/usr/bin/python3", new[] { Path.Combine(temp.Path, "together.py"), "3", temp.Path },
            env: new Dictionary<string, string> { ["JUPYTER_PATH"] = temp.Path, ["DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1" }, timeoutSeconds: 600);
        output.WriteLine(run.Stdout);
        var logs = string.Join("\n", Directory.GetFiles(temp.Path, "kernel*.log").Select(f => f + ":\n" + string.Join("\n",
            File.ReadLines(f).Where(l => l.Contains("xception") && !l.TrimStart().StartsWith("at ", StringComparison.Ordinal)).Take(3))));
        Assert.True(run.Code == 0, run.Stderr);
        var lines = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("kernel ", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, lines.Count);
        Assert.True(lines.All(l => l.EndsWith(": ok alive=True", StringComparison.Ordinal)), string.Join("\n", lines) + "\n" + logs);
    }

    [Fact]
    public void TheDotNetKernelspecServesNothingBeyondLoopbackAndStillRunsACell()
    {
        if (!File.Exists(Tool)) { output.WriteLine($"not checked: {Tool} is missing (environment/setup.d/interactive.sh installs it)"); return; }
        var (canUnshare, _, _) = Tools.Run("unshare", new[] { "-n", "true" }, timeoutSeconds: 30);
        if (canUnshare != 0) { output.WriteLine("not checked: unshare -n needs root (a network namespace of the test's own)"); return; }
        using var temp = new TempDir();
        var d = temp.Path;
        WriteKernelspec(d);
        var ports = Enumerable.Range(0, 5).Select(_ => FreePort()).ToArray();
        File.WriteAllText(Path.Combine(d, "conn.json"), $$"""
            {"shell_port": {{ports[0]}}, "iopub_port": {{ports[1]}}, "stdin_port": {{ports[2]}}, "control_port": {{ports[3]}}, "hb_port": {{ports[4]}},
             "ip": "127.0.0.1", "key": "{{Guid.NewGuid():N}}", "transport": "tcp", "signature_scheme": "hmac-sha256", "kernel_name": ".net-csharp"}
            """);
        File.WriteAllText(Path.Combine(d, "cell.py"), Cell);
        File.WriteAllText(Path.Combine(d, "inner.sh"), Inner);
        var run = Tools.Run("unshare", new[] { "-n", "bash", Path.Combine(d, "inner.sh"), d }, timeoutSeconds: 400);
        string Read(string name) => File.Exists(Path.Combine(d, name)) ? File.ReadAllText(Path.Combine(d, name)) : "";
        output.WriteLine(Read("listening.txt"));
        var answers = Read("answers.txt").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var wide = Read("listening.txt").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [_, _, _, var local, ..] && !local.StartsWith("127.0.0.1:") && !local.StartsWith("[::1]:")).ToList();
        bool ranCell = Read("cell.out").Contains("42") && Read("cell.out").Contains("status ok");
        FuzzTable.Record("kernel", ".net-csharp kernelspec: ports beyond loopback (network namespace)", new Outcomes
        {
            Clean = answers.Length == 0 && wide.Count == 0 && ranCell ? 1 : 0, Injection = answers.Length > 0 || wide.Count > 0 ? 1 : 0,
            Crash = ranCell || answers.Length > 0 || wide.Count > 0 ? 0 : 1,
        }, "26.9a");
        Assert.True(answers.Length == 0, $"ports answering on 10.99.0.1: {string.Join(", ", answers)}\n{Read("listening.txt")}");
        Assert.True(wide.Count == 0, "listening beyond loopback:\n" + string.Join("\n", wide));
        Assert.True(ranCell, $"the kernel did not run a cell: {Read("cell.out")}\n{Read("kernel.log")[..Math.Min(2000, Read("kernel.log").Length)]}\n{run.Stderr}");
    }
}
