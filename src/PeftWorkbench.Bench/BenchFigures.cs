using PeftWorkbench.Vit;
using TorchSharp;

namespace PeftWorkbench.Bench;

/// <summary>One row of a benchmark: inference, or a method's training step. Trainable count (head excluded) for methods.</summary>
public sealed record BenchRow(string Name, double ImagesPerSecond, long? TrainableExclHead);

/// <summary>What one side (TorchSharp in-process, or the PyTorch reference) measured in one run.</summary>
public sealed record BenchFigures
{
    /// <summary>"torchsharp" or "pytorch".</summary>
    public required string Side { get; init; }
    public required IReadOnlyList<BenchRow> Rows { get; init; }
    public long PeakRssBytes { get; init; }
    /// <summary>Library version (TorchSharp's, or torch.__version__).</summary>
    public string? Version { get; init; }
    /// <summary>Thread setup in words (torch threads; for PyTorch also what the calibration measured).</summary>
    public string? Threads { get; init; }
    /// <summary>The BLAS the side ran on, where it can tell (PyTorch: the library it really loaded).</summary>
    public string? Blas { get; init; }
    /// <summary>False when the side knows it ran on a slow reference BLAS (an unfair baseline).</summary>
    public bool FastBlas { get; init; } = true;

    public BenchRow? Row(string name) => Rows.FirstOrDefault(r => r.Name == name);
}

/// <summary>Our side of `peft bench`: inference, then each method (build, 2 warm-up steps), then rounds that
/// alternate over all of them, best round kept. bench.py runs the same order, so peak RSS compares like with like.
/// With a <see cref="ReferenceSession"/>, each of our timings is followed at once by the same workload there.</summary>
public static class TorchSharpBench
{
    /// <summary>The methods the PyTorch reference implements: full FT and one method of each family.</summary>
    public static IReadOnlyList<string> Methods { get; } = new[] { "full", "lora", "rand_h_adapter", "vpt_deep", "bitfit" };

    public static BenchFigures Run(VitConfig config, IReadOnlyList<string> methods, int batch, int steps, int rounds,
        Action<string>? log = null, ReferenceSession? pair = null)
    {
        if (batch < 1 || steps < 1 || rounds < 1) throw new ArgumentException("batch, steps and rounds must be at least 1.");
        var runs = new List<IBenchRun>();
        try
        {
            runs.Add(new InferenceRun(config, batch));
            runs[0].Warmup();
            foreach (var id in methods)
            {
                if (BenchMode.Parse(id).Name == "inference")
                {
                    var inference = new InferenceRun(config, batch, BenchMode.Parse(id).Bf16);
                    runs.Add(inference);
                    inference.Warmup();
                    continue;
                }
                var run = new MethodRun(config, id, batch);
                runs.Add(run);
                run.Warmup();
                if (run.FrozenWithGrad > 0) throw new InvalidOperationException($"{id}: {run.FrozenWithGrad} frozen tensors received a gradient (a bug in the method)");
            }
            for (int round = 0; round < rounds; round++)
            {
                foreach (var run in runs)
                {
                    // OpenBLAS's idle threads in the reference spin for a moment after its last call before they
                    // sleep (libtorch's here wait passively): let them settle so they do not steal our first steps.
                    if (pair is { Problem: null }) Thread.Sleep(300);
                    run.Time(steps);
                    pair?.Time(run.Id);
                }
                bool both = pair is { Problem: null };
                log?.Invoke($"round {round + 1}/{rounds}, best img/s {(both ? "TorchSharp | PyTorch" : "TorchSharp")}: " +
                    string.Join(", ", runs.Select(r => $"{r.Id} {r.Best:F0}" + (both ? $" | {pair!.Best(r.Id):F0}" : ""))));
            }
            return new BenchFigures
            {
                Side = "torchsharp",
                Rows = runs.Select(r => new BenchRow(r.Id, r.Best, (r as MethodRun)?.TrainableExclHead)).ToList(),
                PeakRssBytes = ProcessMemory.PeakRss(),
                Version = "TorchSharp " + typeof(torch).Assembly.GetName().Version?.ToString(3),
                Threads = $"{torch.get_num_threads()} torch threads",
                Blas = "libtorch (MKL)",
            };
        }
        finally { foreach (var run in runs) run.Dispose(); }
    }
}

/// <summary>Resident memory of this process from /proc (Linux); the working set elsewhere.</summary>
public static class ProcessMemory
{
    public static long Rss() => ProcStatus("VmRSS:");
    public static long PeakRss() => ProcStatus("VmHWM:");

    /// <summary>Resets the peak (VmHWM) to the current RSS, so a later <see cref="PeakRss"/> covers only what
    /// follows (Linux's /proc/self/clear_refs "5"); false where that is not possible.</summary>
    public static bool ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    static long ProcStatus(string field)
    {
        if (!File.Exists("/proc/self/status")) return field == "VmHWM:" ? System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64 : Environment.WorkingSet;
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(field));
        return line is null ? 0 : long.Parse(line[field.Length..].Trim().Split(' ')[0]) * 1024;
    }
}
