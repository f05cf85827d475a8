using System.Diagnostics;
using System.Text.Json.Nodes;
using PeftWorkbench.Kernel.Protocol;

namespace PeftWorkbench.Bench;

/// <summary>`peft kernel bench`: the latencies a notebook user feels, measured over the real protocol, with the kernel
/// started as `CLI kernel run -f FILE` (cli: how to start the `peft` CLI).</summary>
public static class KernelBench
{
    public static void Run(IReadOnlyList<string> cli, int repeats, Action<string> log)
    {
        var dir = Path.Combine(Path.GetTempPath(), "peft-kernel-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var connection = KernelClient.FreeConnection();
        var file = Path.Combine(dir, "kernel.json");
        connection.Save(file);
        var psi = Tuning.PeftCommandLine.StartInfo(cli, "kernel", "run", "-f", file);
        psi.RedirectStandardError = true;

        var clock = Stopwatch.StartNew();
        using var kernel = Process.Start(psi)!;
        kernel.ErrorDataReceived += (_, _) => { };
        kernel.BeginErrorReadLine();
        try
        {
            using var client = new KernelClient(connection);
            var start = clock.Elapsed;
            var first = Time(client, "1 + 1");
            var firstTorch = Time(client, "torch.randn(64, 64).matmul(torch.randn(64, 64)).sum().item<float>()");
            var plain = Enumerable.Range(0, repeats).Select(i => Time(client, $"var v{i} = Enumerable.Range(0, 1000).Sum();\nv{i}")).ToList();
            var torchCells = Enumerable.Range(0, repeats).Select(_ => Time(client, "torch.randn(64, 64).matmul(torch.randn(64, 64)).sum().item<float>()")).ToList();
            client.Request(client.Control, "shutdown_request", new JsonObject { ["restart"] = false }, out _);
            kernel.WaitForExit(10_000);

            log($"kernel start (process start to kernel_info_reply + iopub ready): {start.TotalMilliseconds,8:F0} ms");
            log($"first cell, `1 + 1` (waits for Roslyn warm-up):             {first,8:F0} ms");
            log($"first torch cell (64x64 matmul):                             {firstTorch,8:F0} ms");
            log($"typical plain cell, median of {repeats}:                          {Median(plain),8:F0} ms");
            log($"typical torch cell, median of {repeats}:                          {Median(torchCells),8:F0} ms");
        }
        finally
        {
            if (!kernel.HasExited) kernel.Kill(entireProcessTree: true);
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>execute_request sent to status idle received: what a front end waits for.</summary>
    static double Time(KernelClient client, string code)
    {
        var sw = Stopwatch.StartNew();
        var reply = client.Request(client.Shell, "execute_request", new JsonObject { ["code"] = code, ["silent"] = false, ["store_history"] = true }, out _);
        if (reply.Content["status"]?.GetValue<string>() != "ok")
            throw new InvalidOperationException($"bench cell failed: {reply.Content["ename"]}: {reply.Content["evalue"]}");
        return sw.Elapsed.TotalMilliseconds;
    }

    static double Median(List<double> xs) => IoBench.Median(xs);
}
